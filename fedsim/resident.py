"""Arrays that stay in memory: Flower's ``Array`` without the ``.npy`` round trip in-process.

Flower's ``Array`` holds its values as ``.npy`` bytes: ``np.save`` when it is built and
``np.load`` (which parses the header with ``ast.literal_eval``) every time it is read.
For a small model that costs more than a client's local training (see
benchmarks/README.md). A ``ResidentArray`` keeps the numpy values themselves and makes
the same bytes only when something asks for ``data`` (a message leaving the process on
the Ray engine), so an in-process round trip is a memory copy.
"""

from collections.abc import Mapping
from io import BytesIO

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from fedsim.flower_internals import fill_numpy_array_fields


class ResidentArray(Array):
    """An ``Array`` that keeps its values as a numpy array.

    ``numpy()`` returns a fresh copy, as ``Array.numpy()`` does, so no reader can change
    the values another reader sees; ``data`` gives the bytes ``Array`` would hold.
    """

    def __init__(self, values: np.ndarray) -> None:
        # Array.__init__ would serialise the values to .npy bytes; fill its fields directly.
        fill_numpy_array_fields(self, values)
        self.values = values

    @property
    def data(self) -> bytes:  # type: ignore[override]
        buffer = BytesIO()
        np.save(buffer, self.values, allow_pickle=False)
        return buffer.getvalue()

    def numpy(self) -> np.ndarray:
        return self.values.copy()

    def __reduce__(self):
        return (_unpickled_resident, (self.values,))


def _unpickled_resident(values: np.ndarray) -> ResidentArray:
    """A ResidentArray whose values can be written: Ray hands unpickled arrays over read-only (zero-copy)."""
    return ResidentArray(values if values.flags.writeable else values.copy())


def resident_record(tensors: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """An ArrayRecord holding a copy of ``tensors`` (a state_dict, say) as resident arrays."""
    record = ArrayRecord()  # not ArrayRecord(dict): that would rebuild plain Arrays from ``data``
    for name, tensor in tensors.items():
        record[name] = ResidentArray(tensor.detach().cpu().numpy().copy())
    return record


def make_resident(record: ArrayRecord) -> None:
    """Replace, in place, each array of ``record`` that is not resident by a resident copy.

    The values do not change; later reads of ``record`` skip ``np.load``.
    """
    for name, array in list(record.items()):
        if not isinstance(array, ResidentArray):
            record[name] = ResidentArray(array.numpy())


def load_weights(model: torch.nn.Module, record: ArrayRecord) -> None:
    """Copy the arrays of ``record`` into ``model``'s parameters and buffers (the same names).

    ``model.load_state_dict(record.to_torch_state_dict())`` does the same with an extra
    copy of every array and per-module checks that cost more than a small model's step.
    """
    targets = model.state_dict(keep_vars=True)
    if targets.keys() != record.keys():
        missing, unexpected = sorted(targets.keys() - record.keys()), sorted(record.keys() - targets.keys())
        raise KeyError(f"the arrays do not match the model: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, target in targets.items():
            array = record[name]
            values = array.values if isinstance(array, ResidentArray) else array.numpy()
            if tuple(target.shape) != values.shape:
                raise ValueError(f"array {name!r} has shape {values.shape}, the model's {tuple(target.shape)}")
            target.copy_(torch.from_numpy(values))
