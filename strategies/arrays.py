"""NumPy views of ArrayRecords for strategies that aggregate model updates on the server."""

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict


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
        record[key] = Array(np.asarray(value, dtype=dtype))
    return record


def reported(content: RecordDict, key: str) -> float:
    """The value a reply reports as ``key`` in its MetricRecord."""
    return float(next(iter(content.metric_records.values()))[key])


def example_shares(contents: list[RecordDict], weighted_by_key: str) -> list[float]:
    """Each reply's share n_i / sum_j n_j of the examples (``weighted_by_key`` holds n_i)."""
    counts = [reported(content, weighted_by_key) for content in contents]
    total = sum(counts)
    return [count / total for count in counts]
