"""Round observers (the ``callbacks`` config group): progress, metrics.csv, fairness, trackers."""

from fedsim.callbacks.base import Callback, Failure, History, Row, RunInfo
from fedsim.callbacks.divergence import DivergenceCheck
from fedsim.callbacks.fairness import Fairness
from fedsim.callbacks.metrics_csv import MetricsCSV
from fedsim.callbacks.progress import Progress
from fedsim.callbacks.tensorboard import TensorBoard

__all__ = ["Callback", "DivergenceCheck", "Failure", "Fairness", "History", "MetricsCSV", "Progress", "Row", "RunInfo", "TensorBoard"]
