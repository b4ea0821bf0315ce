"""Round observers (the ``callbacks`` config group): progress, metrics.csv, fairness, trackers."""

from fedsim.callbacks.base import Callback, History, Row, RunInfo
from fedsim.callbacks.fairness import Fairness
from fedsim.callbacks.metrics_csv import MetricsCSV
from fedsim.callbacks.progress import Progress
from fedsim.callbacks.tensorboard import TensorBoard

__all__ = ["Callback", "Fairness", "History", "MetricsCSV", "Progress", "Row", "RunInfo", "TensorBoard"]
