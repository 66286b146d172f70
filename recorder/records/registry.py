"""Every record spec ``watch()`` installs, in the order they run at each moment. One line each."""
from __future__ import annotations

from .activations import Activations
from .cuda_memory import CudaMemory
from .data_wait import DataWait
from .grad_carried import GradCarried
from .gradients import Gradients
from .histograms import Histograms
from .inputs import InputStats
from .learning_rate import LearningRate
from .loss_scale import LossScale
from .snapshots import Snapshots
from .step_time import StepTime
from .weights import Weights

RECORDS = (
    LearningRate,
    LossScale,
    Gradients,
    GradCarried,
    Weights,
    StepTime,
    DataWait,
    CudaMemory,
    Histograms,
    Snapshots,
    InputStats,
    Activations,
)
