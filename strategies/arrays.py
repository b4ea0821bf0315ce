"""NumPy views of ArrayRecords, their norms, clipping and weighted means, and the base of strategies that compute the next global model."""

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fedsim.flower_internals import validate_message_reply_consistency
from fedsim.resident import ResidentArray
from strategies.fedavg import FedAvg
from strategies.weighting import train_contents


def as_float64(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The arrays of ``record`` in float64, so that sums of many updates lose no precision."""
    return {key: array.numpy().astype(np.float64) for key, array in record.items()}


def to_record(arrays: dict[str, np.ndarray], like: ArrayRecord) -> ArrayRecord:
    """An ArrayRecord of ``arrays`` in the dtypes of ``like`` (integer buffers are rounded)."""
    record = ArrayRecord()
    for key, value in arrays.items():
        dtype = np.dtype(like[key].dtype)
        if np.issubdtype(dtype, np.integer):
            value = np.rint(value)
        record[key] = ResidentArray(np.array(value, dtype=dtype))
    return record


def flat_norm(arrays: dict[str, np.ndarray]) -> float:
    """The Euclidean norm of all of ``arrays`` taken together as one vector."""
    return float(np.sqrt(sum(np.sum(np.square(value)) for value in arrays.values())))


def clip_to_norm(arrays: dict[str, np.ndarray], max_norm: float) -> dict[str, np.ndarray]:
    """``arrays`` times min(1, max_norm / ``flat_norm(arrays)``): one vector clipped to norm ``max_norm``."""
    size = flat_norm(arrays)
    scale = max_norm / size if size > max_norm else 1.0
    return {key: value * scale for key, value in arrays.items()}


def weighted_mean(points: list[dict[str, np.ndarray]], weights: list[float]) -> dict[str, np.ndarray]:
    """sum_i w_i p_i / sum_i w_i, array by array."""
    total = sum(weights)
    return {key: sum(weight * point[key] for weight, point in zip(weights, points)) / total for key in points[0]}


class GlobalModelUpdate(FedAvg):
    """FedAvg whose aggregation computes the next global model from the one it sent.

    Subclasses implement ``next_global(x, contents)``: ``x`` the global arrays sent this
    round (float64), ``contents`` the valid replies, whose weights in the update are
    ``shares(contents)`` (or ``client_weights``: see ``strategy.weighting``); metrics are
    aggregated as FedAvg does. ``replies_carry_extra_arrays`` skips FedAvg's
    one-ArrayRecord-per-reply check for algorithms whose replies carry more (SCAFFOLD's
    control-variate deltas).
    """

    replies_carry_extra_arrays = False
    checkpointed: tuple[str, ...] = ("global_arrays",)  # server state between rounds (fedsim.checkpoint)

    def __init__(self, *, weighting: str, **fedavg_args) -> None:
        super().__init__(weighting=weighting, **fedavg_args)
        self.global_arrays: ArrayRecord | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.global_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def next_global(self, x: dict[str, np.ndarray], contents: list[RecordDict]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        extra = self.replies_carry_extra_arrays
        contents = train_contents(self, replies, validate=not extra)
        if not contents:
            return None, None
        if extra:
            validate_message_reply_consistency(contents, self.weighted_by_key, check_arrayrecord=False)
        next_x = self.next_global(as_float64(self.global_arrays), contents)
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        return to_record(next_x, like=self.global_arrays), metrics
