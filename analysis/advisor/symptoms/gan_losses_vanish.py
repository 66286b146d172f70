"""``gan_losses_vanish``: a GAN's generator and discriminator losses both near 0 at the end.

In the adversarial game one network's loss falls only as the other's rises: the discriminator's
loss is low when it tells real from fake, the generator's when its fakes pass as real. Both near 0
together cannot happen in that game; it means the generator's step does not play it: its loss is
computed with the fake label (``label.fill_(fake_label)`` left in the G step of pytorch/examples'
dcgan), so G learns to help D. Trial 15 (F18): Loss_G and Loss_D both -> 0.001 read "no problems
found" for G and "activation choice (85%)" for D's output Sigmoid.

The losses judged are the ones ``vocab.is_adversarial_loss`` names (Loss_G, errD, g_loss, ...),
non-negative ones only (BCE, least squares; a Wasserstein critic's loss has no floor at 0). The
README's pattern records each network in its own file (two Recorders, ``step=i``): a run with one
side's losses looks for the other side's file beside it, started by the same script (same host,
start times within ``SAME_LAUNCH_S``).
"""
from __future__ import annotations

import math
import os
import stat
import time
from pathlib import Path

import numpy as np

from trainspect.recorder import format as h5fmt
from trainspect.recorder.format import RunFileError

from ...findings import Evidence, Finding
from ...vocab import _name_words
from ..series import fmt
from ..spec import SymptomSpec

GENERATOR_WORDS = {"g", "gen", "generator"}
DISCRIMINATOR_WORDS = {"d", "disc", "discriminator", "critic"}
NEAR_ZERO = 0.05        # BCE at D(x) = 0.95: a side that wins every sample
START_MIN = 0.1         # a loss that started lower was never a game loss at chance (2 ln 2 / ln 2 for BCE)
SHARE = 0.1             # and fell to a tenth of its start
MIN_POINTS = 20
FIRST_POINTS = 5
SAME_LAUNCH_S = 120.0   # two Recorders of one script start within seconds of each other
MAX_NEIGHBOURS = 16     # run files beside it opened at most (closest modification time first)
MAX_LISTED = 100_000    # folder entries looked at (~1 s): a folder of a million files costs no more
NEIGHBOUR_BUDGET_S = 3.0   # no further neighbour is opened after this long


def side(name: str) -> str | None:
    words = set(_name_words(name))
    g, d = bool(words & GENERATOR_WORDS), bool(words & DISCRIMINATOR_WORDS)
    return "G" if g and not d else "D" if d and not g else None


def _levels(values):
    """(first level, last level, lowest) of a loss: medians of its first FIRST_POINTS values (both
    losses leave chance within a few dozen steps when G helps D) and of its last tenth."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < MIN_POINTS:
        return None
    k = max(2, len(v) // 10)
    return float(np.median(v[:FIRST_POINTS])), float(np.median(v[-k:])), float(v.min())


def _vanished(values) -> tuple | None:
    lv = _levels(values)
    if lv is None:
        return None
    first, last, lowest = lv
    if lowest < 0 or first < START_MIN or last > NEAR_ZERO or last > SHARE * first:
        return None
    return first, last


def _by_side(losses: dict) -> dict:
    """{"G"|"D": (name, steps, values)}: the first loss of each side (the total, Loss_D, before its
    parts: the shortest name)."""
    out = {}
    for name in sorted(losses, key=len):
        s = side(name)
        if s is not None and s not in out:
            out[s] = (name, *losses[name])
    return out


def _a_time(value) -> bool:
    """A start time two runs can be compared by: a NaN (JSON allows it) was within 120 s of every
    run (abs(NaN - t) > 120 is False), a file's hostile "start_time": NaN made it every run's partner."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _neighbour_files(path: Path) -> list[Path]:
    """The regular ``*.h5`` files beside ``path`` (symlinks followed), closest modification time
    first; never ``path`` itself (same inode). A hostile folder costs a bounded listing: at most
    MAX_LISTED entries are looked at, and a symlink loop, a dangling link, a FIFO, socket or
    device is passed over (opening a FIFO would block; one bad entry must not hide the partner)."""
    try:
        me = os.stat(path)
        listing = os.scandir(path.parent)
    except OSError:
        return []
    near = []
    with listing:
        for n, entry in enumerate(listing):
            if n >= MAX_LISTED:
                break
            if not entry.name.endswith(".h5") or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()          # follows a symlink: a loop or a dangling one raises
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) != (me.st_dev, me.st_ino):
                near.append((abs(st.st_mtime - me.st_mtime), entry.name))
    near.sort()
    return [path.parent / name for _, name in near]


def _run_file_kind(p: Path) -> str | None:
    """"closed" (a writer closed it), "crashed" (its writer was killed) or None (not a complete
    HDF5 file, or a live writer holds it), from 64 bytes, nothing that waits. A held file would
    be opened in SWMR mode, with retries of seconds while it changes; the partner of a finished
    run is finished too, or its writer was killed with it."""
    try:
        head = h5fmt.read_head(p)
    except RunFileError:
        return None
    if not head.writer_open:
        return "closed"
    return "crashed" if h5fmt.writer_died(p) else None


def _candidates(path: Path, deadline: float):
    """The neighbours to open, closed files first: a crashed-looking one that keeps changing
    costs an open retry of seconds, and must not spend the budget before the partner."""
    crashed = []
    for p in _neighbour_files(path):
        if time.monotonic() > deadline:
            return
        kind = _run_file_kind(p)
        if kind == "closed":
            yield p
        elif kind == "crashed":
            crashed.append(p)
    yield from crashed


def _other_side_file(sig, missing: str):
    """(file name, loss name, steps, values) of the other network's loss, from a run file beside
    this one that the same launch wrote (same host, start within SAME_LAUNCH_S); else None.
    At most MAX_NEIGHBOURS files are opened, within NEIGHBOUR_BUDGET_S."""
    path = Path(sig.path) if sig.path else None
    start, host = sig.meta.get("start_time"), sig.meta.get("host")
    if path is None or not _a_time(start):
        return None
    from ...run import open_run   # run files beside this one: read only when this run is one side of a GAN
    deadline = time.monotonic() + NEIGHBOUR_BUDGET_S
    opened = 0
    for p in _candidates(path, deadline):
        if opened >= MAX_NEIGHBOURS or time.monotonic() > deadline:
            break
        opened += 1
        try:
            with open_run(p, keep_points=False) as other:
                meta = other.meta or {}
                when = meta.get("start_time")
                if meta.get("host") != host or not _a_time(when) or abs(when - start) > SAME_LAUNCH_S:
                    continue
                gan = _gan_names(other)     # once: a file of 10^4 metric names took a minute
                names = [n for n in other.metric_names() if n in gan and side(n) == missing]
                if not names:
                    continue
                name = min(names, key=len)
                s = other.scalar_views([name])[name]
                values = np.asarray(s.values, dtype=np.float64)
                if _levels(values) is None:
                    continue        # too few points to be the other network's loss: look on
                return os.path.basename(p), name, np.asarray(s.steps), values
        except Exception:  # noqa: BLE001 - a file beside the run that cannot be read is not its partner
            continue
    return None


def _gan_names(run) -> set:
    from ...vocab import adversarial_losses
    return set(adversarial_losses(run.metric_names()))


def detect(sig, ctx):
    if not sig.adversarial or sig.live:
        return None
    sides = _by_side(sig.gan_losses)
    if not sides or len(sides) == 1 and (sig.path is None or not sig.meta):
        return None
    where = {}
    for missing in ("G", "D"):
        if missing not in sides:
            found = _other_side_file(sig, missing)
            if found is None:
                return None
            where[missing] = found[0]
            sides[missing] = found[1:]
    got = {s: _vanished(sides[s][2]) for s in ("G", "D")}
    if got["G"] is None or got["D"] is None:
        return None
    steps = [np.asarray(sides[s][1]) for s in ("G", "D")]
    first = int(max(st.min() for st in steps))
    last = int(min(st.max() for st in steps))
    evidence = []
    for s, net in (("G", "generator"), ("D", "discriminator")):
        name = sides[s][0]
        start, end = got[s]
        src = f" (in {where[s]})" if s in where else ""
        evidence.append(Evidence(
            series=name if s not in where else "", steps=[first, last], values=[round(start, 4), round(end, 4)],
            threshold=NEAR_ZERO,
            text=f"the {net}'s {name}{src} went from {fmt(start)} to {fmt(end)} (median of the last tenth; "
                 f"threshold {NEAR_ZERO:g} and a tenth of its start)"))
    g, d = sides["G"][0], sides["D"][0]
    return Finding(
        symptom="gan_losses_vanish", severity="warning",
        title=f"both adversarial losses fell to ~0 ({g} {fmt(got['G'][1])}, {d} {fmt(got['D'][1])}): the "
              "generator is not playing against the discriminator",
        first_step=first, last_step=last, evidence=evidence,
        facts={"generator_loss": got["G"][1], "discriminator_loss": got["D"][1], "other_file": where})


def gan_output_saturation(s, ctx) -> bool:
    """A discriminator's output Sigmoid at its bounds is D telling every sample apart (winning the
    game), not a wrong activation: the DCGAN reference design (Sigmoid + BCELoss) read
    "activation choice (85%)". True when it moved the scores."""
    if not ctx.sig.adversarial:
        return False
    game = ctx.found.get("gan_losses_vanish")
    if game is not None:
        s.boost("generator_helps_discriminator", 0.9, "the saturated output is the discriminator's: it tells every "
                                                      "sample apart because the generator's losses fell with its "
                                                      "own (see gan_losses_vanish)")
    else:
        # Sigmoid + BCELoss is DCGAN's design and the inputs/init are the game's usual ones: D winning is the
        # imbalance, not an init or scaling to fix (trial 18 U2: D at 100x G's LR read "He init, standardise")
        s.boost("discriminator_wins", 0.9, "the saturated output is the discriminator's: it tells every sample apart "
                                           "with certainty" + _game_levels(ctx.sig))
        for cause in ("bad_init", "input_scaling", "missing_normalization"):
            s.damp(cause, 0.3)
        s.damp("lr_too_high", 0.5)
    s.damp("activation_choice", 0.3)
    s.why["activation_choice"] = ("a GAN's discriminator output saturates when it tells real from fake with "
                                  "certainty: the game's balance, not the activation (Sigmoid + BCELoss is the "
                                  "DCGAN reference design)")
    return True


def _game_levels(sig) -> str:
    """"; Loss_D fell from 1.39 to 0.46 while Loss_G rose from 0.69 to 2" from this file's GAN losses."""
    parts = []
    for name, steps, values in _by_side(sig.gan_losses).values():
        lv = _levels(values)
        if lv is not None and abs(lv[1] - lv[0]) > 0.1 * max(abs(lv[0]), 1e-12):
            parts.append(f"{name} {'fell' if lv[1] < lv[0] else 'rose'} from {fmt(lv[0])} to {fmt(lv[1])}")
    return ("; " + " while ".join(parts)) if parts else ""


SPEC = SymptomSpec(
    id="gan_losses_vanish",
    looks_at="a GAN's adversarial losses (Loss_G, errD, g_loss, ...: vocab), the generator's and the "
             "discriminator's, from this run or, with one side here, from a run file beside it written by the "
             "same launch (same host, start within 120 s)",
    fires_when=f"both losses non-negative, each started (median of the first {FIRST_POINTS}) >= {START_MIN:g} and ended (median of the last tenth) at "
               f"<= {NEAR_ZERO:g} and <= {SHARE:g}x its start: in the game one side's loss falls only as the other's "
               "rises (warning)",
    detect=detect,
    priors={"generator_helps_discriminator": 0.9},
    word="vanishing of both losses",
)
