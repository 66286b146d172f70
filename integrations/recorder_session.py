"""One framework run, possibly spread over several ``Recorder``s.

Frameworks end a run (Lightning's ``finalize``, HF's ``on_train_end``) and may log again later
(``trainer.test()`` after ``fit()``, a restart from a checkpoint). A later recorder continues
the same run: in the same file when the recorder can resume one (``Recorder(resume=True)``),
otherwise in a linked file ``<stem>.resume<n><suffix>`` next to it whose config names the file
it continues (``resumed_from``). Steps stay the framework's own, so they run on unbroken.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

from trainspect.recorder import ranks
from trainspect.recorder.recorder import Recorder, RecorderWarning

RESUMED_FROM = "resumed_from"   # config key of a linked file: the file name it continues


def recorder_can_resume() -> bool:
    return "resume" in inspect.signature(Recorder).parameters


def linked_path(path: Path, rank: int) -> Path:
    """The first ``<stem>.resume<n><suffix>`` whose file for this rank does not exist yet."""
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}.resume{n}{path.suffix}")
        if not ranks.rank_path(candidate, rank).exists():
            return candidate
        n += 1


class RecorderSession:
    def __init__(self, path, name: str | None = None, **recorder_kwargs):
        self.path = Path(path)
        self.name = name if name is not None else self.path.stem
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self.files: list[Path] = []     # every file this session wrote, in order
        self._failed = False

    @property
    def is_open(self) -> bool:
        return self.recorder is not None

    def open(self, config: dict | None = None, *, continuing: bool = False) -> Recorder | None:
        """The open recorder, creating one if needed; ``continuing``: the run goes on from an
        earlier process (a checkpoint). None (after one warning) if the file cannot be created:
        the framework's training goes on without recording."""
        if self.recorder is not None:
            return self.recorder
        if self._failed:
            return None
        info = ranks.rank_and_world()
        rank = info[0] if info is not None else 0
        path, kwargs, config = self.path, dict(self.recorder_kwargs), dict(config or {})
        if (continuing or self.files) and ranks.rank_path(self.path, rank).exists():
            if recorder_can_resume():
                kwargs["resume"] = True
            else:
                config[RESUMED_FROM] = self.path.name
                path = linked_path(self.path, rank)
        try:
            self.recorder = Recorder(path, name=self.name, config=config, **kwargs)
        except OSError as exc:
            self._failed = True
            warnings.warn(f"trainspect: {exc}; this run is not recorded, training goes on", RecorderWarning,
                          stacklevel=3)
            return None
        self.files.append(Path(self.recorder.path) if self.recorder.path is not None else path)
        return self.recorder

    def close(self, status: str | None = None) -> None:
        if self.recorder is not None:
            self.recorder.close(status=status)
            self.recorder = None
