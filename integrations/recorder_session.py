"""The run file of one framework run, opened when the framework first needs it.

Frameworks call "end" more often than a run ends: Lightning's ``finalize`` closes every
``fit``, ``validate`` and ``test``, HF's ``on_train_end`` comes before ``trainer.evaluate()``.
So an end only flushes (everything logged is on disk, readers see it) and the file stays open
for what the script logs next; it closes when the script exits (the recorder's exit hook marks
it finished), on an exception (crashed), or on ``close()``.

A framework restarting from a checkpoint (``continuing``) resumes the run in the same file
(``Recorder(resume=True)``): its steps carry on from the checkpoint's, and rows the earlier
process wrote after that checkpoint are superseded (FORMAT.md, *Segments*).
"""
from __future__ import annotations

import warnings
from pathlib import Path

from trainspect.recorder.recorder import Recorder, RecorderWarning, _user_stacklevel


class RecorderSession:
    def __init__(self, path, name: str | None = None, **recorder_kwargs):
        self.path = Path(path)
        self.name = name if name is not None else self.path.stem
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self.files: list[Path] = []     # every file this session wrote, in order
        self._failed = False
        self._watched = None            # the recorder watch() was called on

    def open(self, config: dict | None = None, *, continuing: bool = False) -> Recorder | None:
        """The open recorder, creating one if needed; ``continuing``: the run goes on from a
        checkpoint. None (after one warning) if the file cannot be created: the framework's
        training goes on without recording."""
        if self.recorder is not None:
            return self.recorder
        if self._failed:
            return None
        kwargs = dict(self.recorder_kwargs)
        if continuing:
            kwargs["resume"] = True
        try:
            self.recorder = Recorder(self.path, name=self.name, config=dict(config or {}), **kwargs)
        except OSError as exc:   # RunFileInUse too: another writer holds the file
            self._failed = True
            warnings.warn(f"trainspect: {exc}; this run is not recorded, training goes on", RecorderWarning,
                          stacklevel=_user_stacklevel())
            return None
        self.recorder._managed = True   # closed by this session, not by another Recorder's watch()
        self.files.append(Path(self.recorder.path) if self.recorder.path is not None else self.path)
        return self.recorder

    def watch(self, model, optimizer=None) -> None:
        """Watch ``model`` once per recorder: a second fit()/train() in the same script reuses
        the hooks the first installed (a second watch() would only warn)."""
        rec = self.recorder
        if rec is not None and self._watched is not rec:
            self._watched = rec
            rec.watch(model, optimizer)

    def flush(self) -> None:
        if self.recorder is not None:
            self.recorder.flush()

    def close(self, status: str | None = None) -> None:
        if self.recorder is not None:
            self.recorder.close(status=status)
            self.recorder = None
