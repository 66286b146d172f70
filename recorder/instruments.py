"""The hooks of a watched model and optimizer; they call the record specs (``records/``).

Imported only from ``Recorder.watch()``. The specs compute on the tensors' device and stage
their results through the recorder link (``link.RecorderLink``), which batches them and copies
them to the host asynchronously; nothing here reads a tensor value on the host.

Step labels: records of an optimizer step carry the 0-based index of that step (the number
of optimizer steps completed before it); activation and input statistics carry the index of
the optimizer step their forward pass feeds.
"""
from __future__ import annotations

import sys
import time
import weakref

import torch

from . import format as fmt
from .amp import ScalerWatch, route_scaler_steps, scaler_enabled, unroute_scaler_steps
from .records.base import Record, Watched
from .hooks import in_functorch_transform, leave_out_of_copies
from .records.registry import RECORDS


def _compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # torch < 2.3
        return False


def _step_wrapper_code():
    """The code object of torch's wrapper around every ``Optimizer.step`` (it runs the hooks)."""
    try:
        return torch.optim.Optimizer.profile_hook_step(lambda self: None).__code__
    except Exception:  # noqa: BLE001 - another torch: the check below is skipped
        return None


_STEP_WRAPPER = _step_wrapper_code()


_GRAPH_TASK = getattr(torch._C, "_current_graph_task_id", None)   # -1 outside autograd's backward


def _in_backward() -> bool:
    """Inside autograd's backward: ``checkpoint(model, x, use_reentrant=False)`` re-runs the
    model's forward there, up to the last tensor it needs; taken for the step's forward, its
    capture replaced the real one and left the last layer NaN (read as a non-finite model)."""
    return _GRAPH_TASK is not None and _GRAPH_TASK() != -1


def _inside_optimizer_step() -> bool:
    """Is an optimizer's ``step()`` on the stack (a closure's forward, LBFGS)? Asked only while
    a step is counted as under way, to notice one that raised and never ran its post hooks."""
    if _STEP_WRAPPER is None:
        return True
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _STEP_WRAPPER:
            return True
        frame = frame.f_back
    return False


_CONTAINERS = (torch.nn.ModuleDict, torch.nn.ModuleList)
SILENT_ITERATIONS = 50


def _cached(cache, optimizer, compute) -> bool:
    """``compute(optimizer)``, remembered weakly: an optimizer the script dropped (and its
    state) is not kept alive; one that is not weak-referenceable is asked each time."""
    try:
        known = cache.get(optimizer)
    except TypeError:
        known = None
    if known is None:
        known = compute(optimizer)
        try:
            cache[optimizer] = known
        except TypeError:
            pass
    return known


_CHECKPOINT_FILE = "checkpoint.py"


def _in_reentrant_checkpoint() -> bool:
    """Is torch.utils.checkpoint's reentrant function on the stack (it runs the wrapped forward
    under no_grad and again in backward)? Asked at most once a step."""
    frame = sys._getframe(2)
    for _ in range(64):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_filename.endswith(_CHECKPOINT_FILE) and "utils" in code.co_filename:
            return True
        frame = frame.f_back
    return False


def _train_mode_sensitive(model) -> list:
    """[(module, flag)] of the Dropout-family (flag 1) and running-statistics BatchNorm (flag 2)
    modules of ``model``: what model.train() left on changes a no-grad forward's results."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    out = []
    for m in model.modules():
        if isinstance(m, _DropoutNd) and m.p > 0:
            out.append((m, 1))
        elif isinstance(m, _BatchNorm) and m.track_running_stats:
            out.append((m, 2))
    return out


def _implements(record: Record, moment: str) -> bool:
    return getattr(type(record), moment) is not getattr(Record, moment)


class Instruments:
    """Installs the hooks of one watched model (and optimizer) and runs the record specs."""

    def __init__(self, link, model, optimizer, layout, schedule: dict, scaler=None):
        """``link``: the recorder's narrow interface; ``schedule``: {"stats_every": n, ...}."""
        self.link = link
        self.optimizer_watched = optimizer is not None
        self.steps_done = 0            # optimizer steps the hooks saw (a GradScaler skip is not one)
        given = scaler is not None and optimizer is not None and scaler_enabled(scaler)
        self.w = Watched(link, model, optimizer, layout, ScalerWatch(scaler) if given else None)
        self.handles, self._opt_handles = [], []
        try:
            self._install(model, optimizer, schedule)
        except BaseException:
            # Hooks already on the model would call into this half-made object at every
            # forward (a scripted block refused a hook): make them inert and take them off.
            self.w.hooks.pause()
            for h in self.handles + self._opt_handles:
                h.remove()
            if optimizer is not None:
                unroute_scaler_steps(optimizer, self._scaler_step)
            raise

    def _install(self, model, optimizer, schedule: dict) -> None:
        self.records = []
        self._schedule = schedule
        self._add_wanted_records()
        if optimizer is not None:
            # GradScaler.step(optimizer): skipped steps are counted, and a scaler the script did
            # not pass is adopted at its first step (amp.py)
            route_scaler_steps(optimizer, self._scaler_step)
        self._compiled_forward = False  # a training forward ran in code compiled after watch()
        self._forward_mode = None      # "train"/"eval": grad-enabled forwards since the last step
        self._trainee = None           # weakref to a submodule found training in an eval-mode model
        self._stochastic = _train_mode_sensitive(model)   # [(module, flag)]: Dropout / BatchNorm modules
        self._nograd_marked = -1       # step at which a no-grad forward in train mode was last marked
        self._nograd_flagged = False   # and that mark had Dropout/BatchNorm training (no eval-mode one since)
        self._nograd_eval_at = -1      # step at which a no-grad forward in eval mode last ran
        self._nograd_zeroed = -1       # step at which a 0 was written (an eval-mode one beside a mark)
        self._others_stepped = False   # another optimizer stepped the model since the last training forward
        self._silent_iterations = 0    # iterations in a row in which only other optimizers stepped
        self._fwd_step = -1            # step whose first training forward was captured
        self._capturing = None         # specs capturing the forward in progress
        self._marked = False           # inside begin_forward()...end_forward(): model calls start no capture
        self._held = None              # that capture's records, held until the step (_grads_fresh)
        self._grad_probe = None if optimizer is None else next(
            (p for g in optimizer.param_groups for p in g["params"] if p.requires_grad), None)
        self._warned_unknown = False
        self._n_opt_params = None
        # A TorchScript model takes no forward hooks: no activation or input statistics, the rest is recorded.
        self.scripted = isinstance(model, torch.jit.ScriptModule)
        if not self.scripted:
            leave_out_of_copies(model)
            self.handles.append(model.register_forward_pre_hook(self.w.hooks.plain(self._root_pre), with_kwargs=True))
            self.handles.append(model.register_forward_hook(self.w.hooks.plain(self._root_post), always_call=True))
        # A ModuleDict/ModuleList (a GAN's {"g": G, "d": D}) is never called itself: its parts'
        # forwards label log(step=None), and the first step says how to get activations.
        self._container = isinstance(model, _CONTAINERS) and optimizer is not None
        self._part_ran = False         # a part of a container ran a training forward since the last step
        for child in model.children() if self._container else ():
            if not isinstance(child, torch.jit.ScriptModule):   # a scripted block takes no hooks
                leave_out_of_copies(child)
                self.handles.append(child.register_forward_pre_hook(self.w.hooks.plain(self._part_forward)))
        self._stepped = False          # the watched optimizer stepped since the last training forward
        self._stepping = 0             # optimizer steps under way (a closure's forwards run inside one)
        self._holds_ours = weakref.WeakKeyDictionary()   # optimizer -> does it hold the model's parameters
        self._replaces = weakref.WeakKeyDictionary()     # optimizer -> does it hold every watched parameter
        if optimizer is not None:
            self._hook_optimizer(optimizer)
            try:   # every optimizer's steps (torch >= 2.0): another one may update this model too
                from torch.optim.optimizer import (
                    register_optimizer_step_post_hook,
                    register_optimizer_step_pre_hook,
                )

                self.handles += [register_optimizer_step_pre_hook(self.w.hooks.eager(self._any_opt_pre)),
                                 register_optimizer_step_post_hook(self.w.hooks.eager(self._any_opt_post))]
            except ImportError:
                pass

    # The recorder switches the instruments off (a failed instrument or writer), tests pick the path.
    enabled = property(lambda self: self.w.enabled, lambda self, v: setattr(self.w, "enabled", v))
    cpu_fast_path = property(lambda self: self.w.cpu_fast_path,
                             lambda self, v: setattr(self.w, "cpu_fast_path", v))

    @property
    def compiled(self) -> bool:
        return self.w.compiled

    def _add_wanted_records(self):
        """Create the record specs this watch() wants that are not there yet (all at watch();
        the scaler's when a GradScaler is adopted) and index them by the moments they use."""
        have = {type(r) for r in self.records}
        for cls in RECORDS:
            every = self._schedule.get(cls.schedule, 0) if cls.schedule else 1
            if cls not in have and every and cls.wanted(self.w):
                record = cls(self.w, every)
                if cls.schedule == "stats_every":
                    record.dense_start = self._schedule.get("dense_start", 0)
                self.records.append(record)
        order = {cls: i for i, cls in enumerate(RECORDS)}
        self.records.sort(key=lambda r: order.get(type(r), len(order)))
        by = {m: [r for r in self.records if _implements(r, m)]
              for m in ("before_step", "after_step", "at_log", "skipped_step", "forward_start", "scaler_found",
                        "training_forward", "other_optimizer_step", "flush")}
        self._before, self._after, self._at_log = by["before_step"], by["after_step"], by["at_log"]
        self._skipped, self._forward, self._scaler_found = by["skipped_step"], by["forward_start"], by["scaler_found"]
        self._training_forward, self._other_step = by["training_forward"], by["other_optimizer_step"]
        self._flushed = by["flush"]

    def _scaler_step(self, scaler, call):
        """``scaler.step(optimizer)`` (amp.route_scaler_steps): a scaler watch() was not given is
        adopted before its first step runs; the steps it skips are counted."""
        if self.w.scaler is None and self.w.enabled:
            self.w.guard(self._adopt_scaler, scaler)
        before = self.steps_done
        out = call()
        if self.steps_done == before and self.w.scaler is not None:
            self._advance(self._skipped_step)
        return out

    def _adopt_scaler(self, scaler):
        self.w.scaler = ScalerWatch(scaler)
        self._add_wanted_records()          # the loss-scale record
        for r in self._scaler_found:        # gradients: unscale from now on (and the pending record)
            r.scaler_found()

    def _hook_optimizer(self, optimizer) -> None:
        self._opt_handles = [optimizer.register_step_pre_hook(self.w.hooks.eager(self._opt_pre)),
                             optimizer.register_step_post_hook(self.w.hooks.eager(self._opt_post))]

    def pause(self) -> None:
        """Another Recorder watches this model for a while: record nothing, count no step."""
        self._held = self.link.held = None
        self.w.hooks.pause()
        if self.optimizer_watched:
            unroute_scaler_steps(self.w.optimizer, self._scaler_step)
        self._capturing = None

    def resume(self) -> None:
        self.w.hooks.resume()
        if self.optimizer_watched:
            route_scaler_steps(self.w.optimizer, self._scaler_step)

    def release(self) -> None:
        """Switched off after a failure: let go of every buffer the records hold."""
        for r in self.records:
            try:
                r.release()
            except Exception:  # noqa: BLE001 - freeing memory must not fail the training
                pass
        self._capturing = None
        self._held = self.link.held = None

    def remove(self) -> None:
        if self.optimizer_watched:
            unroute_scaler_steps(self.w.optimizer, self._scaler_step)
        for h in self.handles + self._opt_handles:
            h.remove()
        self.handles, self._opt_handles = [], []
        for r in self.records:
            r.remove()
        self._capturing = None
        self._held = self.link.held = None

    # ------------------------------------------------------------ optimizer hooks
    @staticmethod
    def _has_closure(optimizer, args, kwargs) -> bool:
        if args and args[0] is optimizer:   # torch 2.13 passes step()'s `self` in args
            args = args[1:]
        return (args[0] if args else kwargs.get("closure")) is not None

    def _opt_pre(self, optimizer, args, kwargs):
        closure = self._has_closure(optimizer, args, kwargs)
        if (self._forward_mode is None and not self._part_ran and not self._compiled_forward and not closure
                and not self.scripted and not self._container and self.w.model.training):
            self._forward_unseen()
        if self._compiled_forward:
            self._after_compiled_forward()
        if self._forward_mode == "eval":
            self._stepped_in_eval_mode()
        if self._container:
            self._container_unmarked()
        if self._held is not None:
            self._release_held()
        self.w.guard(self._before_step, optimizer, closure)

    def _forward_unseen(self):
        """A step with no forward of the watched model through its hooks since the last one:
        ``model.forward(x)`` instead of ``model(x)``, a module that calls ``self.forward(x)`` in
        its own loop (pytorch/examples' forward-forward layers), ``torch.func.functional_call``.
        Its step label is marked now, as the forward's would have been (a loss logged after the
        step landed one step late), and the user hears once that activations and inputs are not
        recorded."""
        self.link.mark_forward()
        if self.w.layout.meta_params:
            return            # watch() said the module holds no data (a torch.func ensemble's skeleton)
        if self.steps_done and self.w.layout.trains_none:
            # a torch.func ensemble's base model, watched on real weights: what trains is elsewhere
            self.link.warn_once("<watch>", f"optimizer.step() without a call of the watched "
                                           f"{type(self.w.model).__name__}, and the optimizer holds none of its "
                                           "parameters: it is not the module being trained (a copy of the model, or a "
                                           "torch.func ensemble's base model run by vmap(functional_call)? watch() "
                                           "does not see inside those); its layers are not recorded: watch the module "
                                           "the training calls, or log the loss")
        elif self.steps_done:   # the first step may come before any forward (a warm-up step)
            self.link.warn_once("<watch>", f"optimizer.step() without a forward of the watched "
                                           f"{type(self.w.model).__name__} through its hooks (model.forward(x) "
                                           "instead of model(x)? self.forward(x) called directly, or torch.func?): "
                                           "steps are labelled anyway; activation and input statistics are not "
                                           "recorded; call the module (module(x))")

    def _after_compiled_forward(self):
        """This iteration's forward ran in code compiled after watch(): its step label is
        marked now, before the step is counted (a loss logged after the step lines up)."""
        self._compiled_forward = False
        self.link.mark_forward()
        if not self.w.compiled:
            self.w.compiled = True
            self.link.warn_once("<watch>", "the model was torch.compile'd after watch(): activation and input "
                                           "statistics are not recorded (in a loop of your own, watch() the "
                                           "compiled model to keep the input statistics)")

    def _count_silent_iterations(self):
        """Another optimizer steps the model, the watched one has stopped, and it could not take
        the watched one's place (it steps other parameters): the step count, which follows the
        watched optimizer, stands still. Said once, after more iterations than a GAN critic's
        extra steps (WGAN: 5 a generator step) could make."""
        if self._stepped:
            self._silent_iterations = 0
        else:
            self._silent_iterations += 1
            if self._silent_iterations == SILENT_ITERATIONS:
                self.link.warn_once("<optimizer>", f"the watched {type(self.w.optimizer).__name__} has not stepped "
                                                   f"for {SILENT_ITERATIONS} iterations while another optimizer "
                                                   "steps the model: steps follow the watched optimizer, so "
                                                   f"log(step=None) stays at step {self.link.step}; pass step= to "
                                                   "log(), or record the new optimizer with a Recorder of its own")
        self._others_stepped = False

    def _stepped_in_eval_mode(self):
        """The only forward since the last step ran with the model in eval mode: model.eval()
        for validation and no model.train() after it (a classic). Its step label is marked now,
        as a training forward's would have been, and the user hears of it once."""
        self._forward_mode = "train"
        self.link.mark_forward()
        trainee = self._trainee() if self._trainee is not None else None
        if trainee is not None and trainee.training:
            return       # the part found training last time still is: no walk over every module
        trainee = next((m for m in self.w.model.modules() if m.training), None)
        if trainee is not None:
            self._trainee = weakref.ref(trainee)
            return       # model.eval() then head.train(): parts frozen in eval mode on purpose
        self.link.host_value(self.link.step, self.link.tag(fmt.SYS_EVAL_MODE), 1.0, time.time())
        self.link.warn_once("<train mode>", "the model is in eval mode during training steps (model.eval() for "
                                            "validation and no model.train() after it?): dropout and batch norm "
                                            "act as at evaluation, and activation statistics are not recorded")

    def _before_step(self, optimizer, closure):
        step, wall = self.link.step, time.time()
        self._check_new_params(optimizer)
        for r in self._before:
            r.before_step(step, wall, closure)

    def flush(self) -> None:
        """``Recorder.flush()``: records held for the end of the iteration are emitted now."""
        for r in self._flushed:
            self.w.guard(r.flush)

    def _any_opt_post(self, optimizer, args, kwargs):
        self._stepping = max(0, self._stepping - 1)
        if self._stepped or optimizer is self.w.optimizer or not self.optimizer_watched or self._stepping:
            return
        if self._replaces_watched(optimizer):
            self._adopt_optimizer(optimizer)
        elif self._holds_model_params(optimizer):
            self._others_stepped = True      # and the watched one did not (so far this iteration)

    def _replaces_watched(self, optimizer) -> bool:
        """Does ``optimizer`` step every parameter the watched one holds? Asked when it stepped
        in an iteration the watched one did not: a script that makes a new optimizer (a second
        fine-tuning phase) left the step count and every record stuck at the switch."""
        def steps_all(opt):
            held = {id(p) for g in opt.param_groups for p in g["params"]}
            return all(id(p) in held for g in self.w.optimizer.param_groups for p in g["params"])
        return _cached(self._replaces, optimizer, steps_all)

    def _holds_model_params(self, optimizer) -> bool:
        """Does ``optimizer`` step any parameter of the watched model?"""
        def holds(opt):
            ours = {id(p) for p in self.w.params}
            return any(id(p) in ours for g in opt.param_groups for p in g["params"])
        return _cached(self._holds_ours, optimizer, holds)

    def _adopt_optimizer(self, optimizer) -> None:
        """The watched optimizer was replaced, seen after the new one's step: this step is
        counted and the next ones recorded."""
        old = type(self.w.optimizer).__name__
        self.adopt_optimizer(optimizer)
        self.link.warn_once("<optimizer>", f"the watched {old} stopped stepping and a new {type(optimizer).__name__} "
                                           f"steps its parameters: it is recorded from step {self.link.step + 1} on")
        self._stepped = True
        self.steps_done += 1
        self.link.advance()

    def adopt_optimizer(self, optimizer) -> None:
        """Record ``optimizer``'s steps from now on in place of the watched one's (a second
        fine-tuning phase makes a new one; ``watch(model, new_optimizer)`` says so)."""
        from .optimizer_wrappers import unwrap

        optimizer = unwrap(optimizer) or optimizer
        old = self.w.optimizer
        for h in self._opt_handles:
            h.remove()
        unroute_scaler_steps(old, self._scaler_step)
        self.w.optimizer = optimizer
        self.w.other_optimizers = False        # the old one no longer steps
        self._n_opt_params = None
        self._hook_optimizer(optimizer)
        route_scaler_steps(optimizer, self._scaler_step)

    def _any_opt_pre(self, optimizer, args, kwargs):
        """Torch's global pre-step hook, for every optimizer. Another one than the watched one,
        before it in this iteration and holding the model's parameters: its update belongs to
        the iteration's weight update (records/weights.py)."""
        self._stepping += 1
        if optimizer is self.w.optimizer:
            return
        if self.optimizer_watched and not self._stepped and self._stepping == 1 and self._replaces_watched(optimizer):
            # A new optimizer of the watched parameters (a second fine-tuning phase), seen before
            # its first step: its own hooks, added now, run for this step (torch reads them after
            # the global ones), so the step is recorded like every other
            self.adopt_optimizer(optimizer)
            return
        if not self._other_step or not self.w.enabled:
            return
        held = self._holds_model_params(optimizer)
        if held:
            self.w.other_optimizers = True   # weight updates wait for the iteration's end
        if held and not self._stepped:
            step, wall = self.link.step, time.time()
            for r in self._other_step:
                self.w.guard(r.other_optimizer_step, step, wall)

    def _opt_post(self, optimizer, args, kwargs):
        self._forward_mode = None
        self._part_ran = False
        self._stepped = True
        self.w.guard(self._after_step, self._has_closure(optimizer, args, kwargs))
        self.steps_done += 1
        self.link.advance()

    def _after_step(self, closure):
        step, wall = self.link.step, time.time()
        for r in self._after:
            r.after_step(step, wall, closure)

    def _advance(self, fn):
        """A GradScaler skip: record it (if the instruments are on) and count the step anyway."""
        self.w.guard(fn)
        self.link.advance()

    def _skipped_step(self):
        """The scaler found inf/NaN gradients and did not call optimizer.step()."""
        step, wall = self.link.step, time.time()
        for r in self._skipped:
            r.skipped_step(step, wall)

    def on_log(self, step, wall):
        """Without an optimizer: gradient/weight statistics at each log() call."""
        self.w.guard(self._on_log, step, wall)

    def _on_log(self, step, wall):
        for r in self._at_log:
            r.at_log(step, wall)

    def _check_new_params(self, optimizer):
        n_opt = sum(len(g["params"]) for g in optimizer.param_groups)
        if self._warned_unknown or n_opt == self._n_opt_params:
            return
        self._n_opt_params = n_opt
        known = {id(p) for p in self.w.params}
        n = sum(1 for g in optimizer.param_groups for p in g["params"] if id(p) not in known)
        if n:
            self._warned_unknown = True
            self.link.warn_once("<layout>", f"{n} optimizer parameter(s) added after watch() are not recorded "
                                            "(the per-layer layout is frozen at watch())")

    # ------------------------------------------------------------ forward hooks
    def training_forward(self, args, kwargs, end: bool) -> None:
        """The watched model's training forward when it is not a call of the model itself
        (Lightning runs ``training_step``): the same as the root module's hooks."""
        if end:
            self._marked = False
            self._root_post(self.w.model, args, None)
        else:
            self._marked = False
            self._root_pre(self.w.model, args, kwargs)
            # Till end_forward(), calls of the model belong to this batch: a GAN's second
            # generator call came after its optimizer's step, took the next step's capture, and
            # the latent noise replaced the image batch in the input statistics from step 1 on.
            self._marked = True

    def _part_forward(self, module, args):
        """A part of a watched container ran a training forward (see ``_container``)."""
        if module.training and torch.is_grad_enabled() and not _compiling() and self._forward_mode != "train":
            self._part_ran = True
            self.link.mark_forward()

    def _container_unmarked(self):
        self._container = False
        self.link.warn_once("<watch>", f"the watched {type(self.w.model).__name__} is never called itself: "
                                       "activation and input statistics are not recorded; watch the module "
                                       "the loop calls, or mark each training step with rec.begin_forward(x) "
                                       "... rec.end_forward()")

    def _root_pre(self, module, args, kwargs):
        self._container = False        # called (begin_forward() for a container): nothing to say
        if _compiling():
            # torch.compile'd after watch(): dynamo traces this hook with fake tensors, so its
            # statistics would be lost and its side effects break the graph; skip (FORMAT.md).
            # Constant stores are replayed at each call: they tell the optimizer's hook that a
            # training forward ran (step labels) and that watch() did not see the compile.
            if module.training and self.optimizer_watched and torch.is_grad_enabled():
                self.link.forward_in_compiled_code()
                self._compiled_forward = True
            return
        if in_functorch_transform() or _in_backward():
            return     # a forward re-run inside backward (activation checkpointing of the model)
        if not module.training:
            if self._forward_mode is None and self.optimizer_watched and torch.is_grad_enabled():
                self._forward_mode = "eval"      # the step's forward if no training one comes
            elif not torch.is_grad_enabled():
                self._nograd_in_eval_mode()
        elif self.optimizer_watched and torch.is_grad_enabled():
            # A forward under no_grad (the training accuracy after the step, in train mode)
            # starts no iteration: it labelled that iteration's log(step=None) one step late.
            self._forward_mode = "train"
            self.link.mark_forward()
            if self._stepping and not _inside_optimizer_step():
                self._stepping = 0     # a step raised (CUDA OOM, caught by the script): no post hook ran
            if self.w.enabled and not self._stepping:   # not a closure's forward inside a step
                if self._others_stepped:
                    self._count_silent_iterations()
                self._stepped = False
                for r in self._training_forward:   # each forward: the spec guards its own work
                    r.training_forward()
        elif not self.optimizer_watched and torch.is_grad_enabled():
            self.link.forward_without_optimizer()
        elif self._stochastic and self._nograd_marked != self.link.step:
            self._nograd_in_train_mode()
        if self._marked:
            return          # a call of the model inside begin_forward()...end_forward(): that batch's
        if not self.w.enabled or not module.training or self._capturing is not None or not torch.is_grad_enabled():
            # A no_grad forward in train mode (a test loss after the step) is not what trains:
            # its batch took the next step's input and activation statistics.
            return
        step = self.link.step
        if self._fwd_step == step:   # the step's forward was captured: only a held capture is replaced
            if self._held is None or not self._grads_fresh():
                return
            self._held = None   # the step's own training forward: it replaces the held capture
        elif self._held is not None:
            self._release_held()   # the only forward of its step (a GradScaler skipped the step)
        due = [r for r in self._forward if r.due(step)]
        if not due:
            return
        self._fwd_step = step
        self._capturing = due
        if not self._grads_fresh():
            self._held = self.link.held = []
        for r in due:
            self.w.guard(r.forward_start, step, args, kwargs)

    def _nograd_in_train_mode(self):
        """A forward without grad (torch.no_grad/inference_mode: validation, sampling) with the
        model in train mode: a Dropout still drops, a BatchNorm normalises with the batch's own
        statistics and folds them into its running ones. Marked once a step, with which of the two
        train (1 Dropout, 2 BatchNorm, 3 both); host flags only, nothing read from the device."""
        step = self._nograd_marked = self.link.step
        if _in_reentrant_checkpoint():
            return        # checkpoint(model, x, use_reentrant=True) runs the training forward without grad
        flags = 0
        for module, flag in self._stochastic:
            if module.training:
                flags |= flag
        self._nograd_flagged = bool(flags)
        if not flags:
            return
        if self._nograd_eval_at == step:
            # the step's validation already ran in eval mode: this one (a text sample after it,
            # model.train() called again) is not the validation; the step reads 0
            self._nograd_flagged = False
            self._write_nograd_zero(step)
        else:
            self.link.host_value(step, self.link.tag(fmt.SYS_NOGRAD_TRAIN_MODE), float(flags), time.time())

    def _nograd_in_eval_mode(self):
        """A no-grad forward in eval mode: the step's validation evidently ran in eval mode.
        Remembered (a host int); written as a 0 only beside a mark of the same step, before it (a
        training accuracy in train mode, then model.eval() and the validation) or after it (a
        sample or pseudo-labels in train mode after the validation): the step reads 0."""
        step = self._nograd_eval_at = self.link.step
        if self._nograd_flagged and self._nograd_marked == step:
            self._nograd_flagged = False
            self._write_nograd_zero(step)

    def _write_nograd_zero(self, step):
        if self._nograd_zeroed != step:      # once a step
            self._nograd_zeroed = step
            self.link.host_value(step, self.link.tag(fmt.SYS_NOGRAD_TRAIN_MODE), 0.0, time.time())

    def _grads_fresh(self) -> bool:
        """No gradient since the last zero_grad() (set_to_none, torch's default): a forward now
        starts an iteration. A forward while the step's gradients are still there (a GAN's
        netD(fake) for the generator's loss, right after the discriminator's step) may not be
        the one its optimizer trains on: its statistics are held until the step, and a fresh
        forward before it replaces them. Without an optimizer, every forward counts."""
        probe = self._grad_probe
        return probe is None or probe.grad is None

    def _release_held(self):
        held, self._held = self._held, None
        if self.link.held is held:   # the step came inside the capture (Lightning's closure): the
            self.link.held = None    # rest of it is this step's, staged as it comes
        if held:
            self.link.release(held)

    def _root_post(self, module, args, output):
        capturing = self._capturing
        if capturing is None or _compiling():
            return
        self._capturing = None
        for r in capturing:
            r.forward_detach()
        for r in capturing:
            self.w.guard(r.forward_end, self._fwd_step, output)
        self.link.held = None   # the capture's records are all in self._held (if held)
