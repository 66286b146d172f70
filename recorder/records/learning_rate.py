"""The learning rate of every parameter group at every optimizer step (``sys/lr``, ``sys/lr/1``, ...)."""
from __future__ import annotations

import torch

from .. import format as fmt
from .scalar import ScalarValues


class LearningRate(ScalarValues):
    @classmethod
    def wanted(cls, watched) -> bool:
        return watched.optimizer is not None

    def before_step(self, step, wall, closure):
        link, fast = self.w.link, self.w.cpu_fast_path
        for i, group in enumerate(self.w.optimizer.param_groups):
            lr = group.get("lr")
            if lr is None:
                continue
            tag = link.tag(fmt.lr_tag(i))
            if isinstance(lr, torch.Tensor):
                if lr.device.type == "cpu" and fast:
                    link.host_value(step, tag, float(lr), wall)
                else:
                    # a copy: schedulers update a tensor lr in place before the batch is sent
                    self.emit(lr.detach().clone(), step, wall, tag)
            else:
                link.host_value(step, tag, float(lr), wall)
