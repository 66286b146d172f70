"""The hooks the recorder puts on the user's model and parameters: safe to copy and to pickle.

timm's ``ModelEma``, torch's ``swa_utils.AveragedModel`` and ``torch.save(model)`` deep-copy or
pickle a model with its hooks. A bound method of the recorder dragged the writer's HDF5 file
along ("h5py objects cannot be pickled") and the user's training died at that line. A copy, or
a model loaded back from a pickle, gets an inert hook: the recorder watches the model it was
given, not copies of it (an EMA copy's forwards are not the training's).
"""
from __future__ import annotations

import functools
import sys
import weakref

# What a pickled hook loads back as: ``sys.audit(event, *args)`` takes any arguments, returns
# None and does nothing unless an audit hook is installed. Only the standard library is named,
# so a checkpoint saved with ``torch.save(model)`` during a run loads where trainspect is not
# installed (a serving machine), as the same model saved without the recorder does.
_INERT = (functools.partial, (sys.audit, "trainspect.inert_hook"))


def _tracing() -> bool:
    return False


class RecorderHook:
    """Calls ``fn``; copied or pickled, does nothing (and returns None, which leaves a forward
    and its inputs and outputs as they are). Under ``torch.jit.trace`` it does nothing either:
    its statistics' ops went into the traced graph, which then differed between the tracer's
    two runs ("Tracing failed sanity checks"), and an export is not a training step."""

    __slots__ = ("fn",)

    def __init__(self, fn=None):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        fn = self.fn
        return None if fn is None or _tracing() else fn(*args, **kwargs)

    def __deepcopy__(self, memo):
        return RecorderHook()

    def __reduce__(self):
        return _INERT


# The hook tables of a module, and the tables keyed by the same hook ids (flags of the hooks).
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_FLAGS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def _state_without_hooks(module) -> dict:
    """The module's pickled state (its class's ``__getstate__``) without the recorder's hooks."""
    state = type(module).__getstate__(module)
    if not isinstance(state, dict):
        return state
    state = dict(state)
    state.pop("__getstate__", None)
    ours = set()
    for name in _HOOK_TABLES:
        table = state.get(name)
        if isinstance(table, dict) and any(isinstance(h, RecorderHook) for h in table.values()):
            ours.update(k for k, h in table.items() if isinstance(h, RecorderHook))
            state[name] = type(table)((k, h) for k, h in table.items() if not isinstance(h, RecorderHook))
    for name in _HOOK_FLAGS if ours else ():
        table = state.get(name)
        if isinstance(table, dict):
            state[name] = type(table)((k, v) for k, v in table.items() if k not in ours)
    return state


def leave_out_of_copies(module) -> None:
    """``torch.save(model)``, ``copy.deepcopy`` and pickle leave the recorder's hooks out of
    ``module``'s copies: they hold the model as if it had never been watched.

    An inert hook in the copy was not enough: since torch 2.6 ``torch.load`` reads whole-model
    checkpoints with ``weights_only=True`` (pytorch/examples' word_language_model loads its
    best model so, with ``safe_globals`` for its own classes), and no callable of its
    allow-list does nothing, so the load failed on the hook. Pickle asks the object itself for
    ``__getstate__`` (an instance attribute wins over nn.Module's), so the module keeps its class."""
    if "__getstate__" in getattr(module, "__dict__", {}):
        return
    ref = weakref.ref(module)

    def __getstate__():
        m = ref()
        return _state_without_hooks(m) if m is not None else {}

    try:
        object.__setattr__(module, "__getstate__", __getstate__)
    except (AttributeError, TypeError):   # a module type that takes no attributes: its copies keep inert hooks
        pass


def _compiling() -> bool:
    return False


try:
    import torch

    _compiling = torch.compiler.is_compiling                  # noqa: F811
    _tracing = getattr(torch._C, "_get_tracing_state", _tracing)   # noqa: F811  (None unless tracing)
    _run_eagerly = torch.compiler.disable(lambda fn, *args, **kwargs: fn(*args, **kwargs))
except (ImportError, AttributeError):   # torch < 2.3: nothing to guard against
    pass


class EagerHook(RecorderHook):
    """A hook that dynamo does not trace: an optimizer step compiled with ``torch.compile``
    (the "compiled optimizer" recipe, or a whole compiled train step) calls it through a graph
    break, eagerly, with real values. Traced, it guarded on the step count and recompiled at
    every step up to dynamo's limit. Outside compiled code it costs one flag read."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        fn = self.fn
        if fn is None or _tracing():
            return None
        if _compiling():
            return _run_eagerly(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def __deepcopy__(self, memo):
        return EagerHook()

    def __reduce__(self):
        return _INERT


class HookSet:
    """The hooks one watch() keeps on a model, its parameters and optimizers, made here so that
    they can go quiet together: ``lr_range_test`` inside a run pauses the run's Recorder, whose
    step count went on through the sweep's steps, and resumes it when the sweep ends."""

    __slots__ = ("_fns", "_hooks")

    def __init__(self):
        self._hooks = []
        self._fns = None          # each hook's fn while paused

    def plain(self, fn) -> RecorderHook:
        return self._keep(RecorderHook(fn))

    def eager(self, fn) -> EagerHook:
        return self._keep(EagerHook(fn))

    def _keep(self, hook):
        if self._fns is not None:   # made while paused: quiet until resumed
            self._fns.append(hook.fn)
            hook.fn = None
        self._hooks.append(hook)
        return hook

    @property
    def paused(self) -> bool:
        return self._fns is not None

    def pause(self) -> None:
        if self._fns is None:
            self._fns = [h.fn for h in self._hooks]
            for h in self._hooks:
                h.fn = None

    def resume(self) -> None:
        if self._fns is not None:
            for h, fn in zip(self._hooks, self._fns):
                h.fn = fn
            self._fns = None


def run_outside_dynamo(*functions) -> None:
    """Frames of ``functions`` and everything they call run without dynamo even inside a
    compiled function's eager parts (after a graph break every Python frame entered is
    compiled on its own: the recorder's were, once per step count, up to dynamo's limit)."""
    try:
        from torch._C._dynamo.eval_frame import _FrameAction, _FrameExecStrategy, set_code_exec_strategy

        for fn in functions:
            set_code_exec_strategy(fn.__code__, _FrameExecStrategy(_FrameAction.SKIP, _FrameAction.SKIP))
    except (ImportError, AttributeError, TypeError):   # another torch: traced as before, still correct
        pass


run_outside_dynamo(EagerHook.__call__)


try:
    _functorch_level = torch._C._functorch.peek_interpreter_stack   # None outside vmap/grad/jacrev
except AttributeError:  # a torch without functorch
    _functorch_level = type(None)


def in_functorch_transform() -> bool:
    """Inside torch.func's vmap/grad/jacrev (an ensemble's vmapped pass, a meta-learning inner
    step, a gradient penalty): the tensors are wrapped and have no storage to read statistics
    from (every instrument went off at the first), and the call is not the step's forward."""
    return _functorch_level() is not None
