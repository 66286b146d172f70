"""How much each Dropout module drops, read back from what the recorder measured of its output.

The recorder keeps no module settings, only the statistics of every leaf module's output in the
first training-mode forward of a scheduled step (``acts``: mean, std, fraction <= 0, ...). A
Dropout in training mode computes y = x * m / (1 - p) with m ~ Bernoulli(1 - p), so against its
input x:

* zeros:  P(y <= 0) = p + (1 - p) P(x <= 0)  ->  p_zeros  = (z_out - z_in) / (1 - z_in)
* energy: E[y^2] = E[x^2] / (1 - p)          ->  p_energy = 1 - E[x^2] / E[y^2]   (E[x^2] = std^2 + mean^2)

Files since the recorder lists each Dropout's ``p`` in ``meta.model.modules`` (FORMAT.md) give the
rate exactly (``source="settings"``), wherever the Dropout sits. For older files and imported runs
the rate is read back: the input is taken to be the output of the leaf registered just before it
(nn.Sequential, and the usual ``Linear, ReLU, Dropout`` blocks). That pairing is only trusted when the two independent
estimates agree (within ``AGREE``): a Dropout fed by something else (a residual sum, a module
registered elsewhere) gives two unrelated numbers and no rate. A Dropout's zeros are its own;
a ReLU registered right after one sees them too (``after_dropout``); how dead_units judges such a
ReLU: ``symptoms/dead_units._behind_dropouts``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import listed_modules

# Element-wise and channel-wise dropout: zeros and a 1/(1-p) scale (AlphaDropout keeps the mean
# and variance instead, with no zeros: not readable this way).
DROPOUT_TYPES = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d"}
# Srivastava et al. (JMLR 2014, fig. 9): with retention probability below ~0.4 the training and test
# errors both rise; they use p = 0.5 for hidden units, 0.2 for inputs. Dropping >= 80 % (keeping
# fewer than 1 unit in 5) is far outside that range.
STRONG_DROPOUT = 0.8
AGREE = 0.1          # the two estimates of p must agree this well for the pairing to count
MAX_INPUT_NONPOS = 0.9   # an input <= 0 almost everywhere leaves no room to see the Dropout's zeros
MIN_RECORDS = 3
MAX_RECORDS = 512    # evenly spaced records read (acts tables grow with the run)


@dataclass(frozen=True)
class DropoutRate:
    module: str          # the Dropout's name
    type: str
    p: float             # drop probability: the module's own (settings) or the zeros' estimate
    p_energy: float      # the second-moment estimate that confirmed it (NaN from settings)
    input: str           # the module whose output was taken for its input ("" from settings)
    records: int         # records both estimates were read from (0 from settings)
    source: str = "read back"   # or "settings": the p the recorder read off the module at watch()

    @property
    def strong(self) -> bool:
        return self.p >= STRONG_DROPOUT

    def how(self, label=str) -> str:
        """Where p comes from, in words."""
        if self.source == "settings" and self.type == "MultiheadAttention":
            return f"attention dropout {self.p:g} (MultiheadAttention(dropout={self.p:g})) as set at watch()"
        if self.source == "settings":
            return f"{self.type}(p={self.p:g}) as set at watch()"
        return f"read back from its output against {label(self.input)}"


def is_dropout(module_type: str) -> bool:
    return module_type in DROPOUT_TYPES


def after_dropout(types) -> set:
    """Column indices whose leaf is registered right after a Dropout (they may see its zeros)."""
    return {j for j in range(1, len(types)) if is_dropout(types[j - 1])}


def _sample(table, n: int = MAX_RECORDS) -> np.ndarray:
    """float64 [records x layers] of at most ``n`` evenly spaced records."""
    rows = len(table)
    idx = np.unique(np.linspace(0, rows - 1, min(rows, n)).round().astype(np.int64)) if rows else np.empty(0, int)
    return table.rows(idx).astype(np.float64)


def recorded_rates(meta) -> dict:
    """{module name: p} of the Dropout-family modules whose ``p`` the recorder listed (FORMAT.md)."""
    out = {}
    for m in listed_modules(meta):
        p = m.get("p")
        if isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1:
            out[m["name"]] = float(p)
    return out


def dropout_rates(sig) -> list[DropoutRate]:
    """The drop probability of every Dropout module: as the recorder listed it, else read back
    (see the module docstring)."""
    listed = _ran(sig, recorded_rates(getattr(sig, "meta", None)))
    types_by = {m.name: m.type for m in sig.modules}
    exact = [DropoutRate(name, types_by.get(name, "Dropout"), p, float("nan"), "", 0, "settings")
             for name, p in listed.items()]
    read = [r for r in _read_back(sig) if r.module not in listed]
    order = {m.name: i for i, m in enumerate(sig.modules)}
    return sorted(exact + read, key=lambda r: order.get(r.module, len(order)))


def _ran(sig, listed: dict) -> dict:
    """The listed Dropouts that ran in training: one whose output was never recorded (defined and
    not called, or called outside the training forward) drops nothing of what trains."""
    z = sig.layer.get("act_frac_nonpos")
    if not listed or z is None or not len(z):
        return listed
    cols = {name: j for j, name in enumerate(z.layers) if name in listed}
    if not cols:
        return listed
    values = _sample(z)
    silent = {name for name, j in cols.items() if not np.isfinite(values[:, j]).any()}
    return {name: p for name, p in listed.items() if name not in silent}


def fed_by(sig, drop: str, source: str, p: float) -> bool:
    """Do Dropout ``drop``'s output statistics say it was fed by ``source``'s output at rate ``p``
    (its zeros p + (1 - p) z_in, its second moment E[x^2] / (1 - p), within AGREE)? A ReLU
    registered right after a Dropout but applied before it (``drop(act(fc(x)))``) feeds it."""
    got = _moments(sig) if 0 <= p < 1 else None
    if got is None or drop not in got[0] or source not in got[0]:
        return False
    names, z, q = got
    i, j = names.index(source), names.index(drop)
    zi, zj, qi, qj = z[:, i], z[:, j], q[:, i], q[:, j]
    with np.errstate(all="ignore"):
        ok = np.isfinite(zi) & np.isfinite(zj) & np.isfinite(qi) & np.isfinite(qj) & (qj > 0)
        if ok.sum() < MIN_RECORDS:
            return False
        zeros = float(np.median(zj[ok] - (p + (1 - p) * zi[ok])))
        energy = float(np.median(1 - (1 - p) * qj[ok] / np.where(qi[ok] > 0, qi[ok], np.nan)))
    return abs(zeros) <= AGREE and (abs(energy) <= AGREE or not np.isfinite(energy))


def _moments(sig):
    """(leaf names, fraction <= 0, second moment E[x^2] = std^2 + mean^2) of at most MAX_RECORDS
    evenly spaced activation records, float64 [records x leaves]; None with too few records."""
    z_t, mean_t, std_t = (sig.layer.get(k) for k in ("act_frac_nonpos", "act_mean", "act_std"))
    if z_t is None or mean_t is None or std_t is None or len(z_t) < MIN_RECORDS:
        return None
    n = min(len(z_t), len(mean_t), len(std_t))
    z, mean, std = (_sample(t.head(n)) for t in (z_t, mean_t, std_t))
    return list(z_t.layers), z, std ** 2 + mean ** 2


def _read_back(sig) -> list[DropoutRate]:
    z_t = sig.layer.get("act_frac_nonpos")
    types_by = {m.name: m.type for m in sig.modules}
    types = [types_by.get(n, "") for n in (z_t.layers if z_t is not None else ())]
    cols = [j for j in range(1, len(types)) if is_dropout(types[j])]
    got = _moments(sig) if cols else None
    if got is None:
        return []
    names, z, q = got
    out = []
    for j in cols:
        i = j - 1
        zi, zj, qi, qj = z[:, i], z[:, j], q[:, i], q[:, j]
        with np.errstate(all="ignore"):
            ok = (np.isfinite(zi) & np.isfinite(zj) & np.isfinite(qi) & np.isfinite(qj)
                  & (zi <= MAX_INPUT_NONPOS) & (qi > 0) & (qj > 0))
            if ok.sum() < MIN_RECORDS:
                continue
            p_zeros = float(np.median((zj[ok] - zi[ok]) / (1 - zi[ok])))
            p_energy = float(np.median(1 - qi[ok] / qj[ok]))
        if abs(p_zeros - p_energy) > AGREE:
            continue
        out.append(DropoutRate(names[j], types[j], float(np.clip(p_zeros, 0.0, 1.0)), p_energy, names[i],
                               int(ok.sum())))
    return out


def strong_dropouts(rates) -> list[DropoutRate]:
    """The rates at or above STRONG_DROPOUT, strongest first (to two digits; then in model order)."""
    return sorted((r for r in rates if r.strong), key=lambda r: -round(r.p, 2))
