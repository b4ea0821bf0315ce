"""Resident arrays behave as Flower's Arrays do, without the .npy round trip."""

import pickle

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from fedsim.resident import ResidentArray, load_weights, make_resident, resident_record


def test_resident_array_reads_and_serializes_as_flower_array():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    resident, flower = ResidentArray(values.copy()), Array(values.copy())
    assert (resident.dtype, resident.shape, resident.stype) == (flower.dtype, flower.shape, flower.stype)
    assert resident.data == flower.data  # the same .npy bytes when a message leaves the process
    np.testing.assert_array_equal(resident.numpy(), values)
    np.testing.assert_array_equal(Array(dtype=flower.dtype, shape=flower.shape, stype=flower.stype,
                                        data=resident.data).numpy(), values)


def test_readers_get_copies():
    resident = ResidentArray(np.zeros(3, dtype=np.float32))
    resident.numpy()[:] = 7.0
    np.testing.assert_array_equal(resident.numpy(), np.zeros(3))


def test_resident_record_copies_the_tensors():
    weights = torch.ones(2, 2)
    record = resident_record({"w": weights})
    weights.add_(1.0)  # a model trained further must not change the reply already built
    assert isinstance(record["w"], ResidentArray)
    np.testing.assert_array_equal(record["w"].numpy(), np.ones((2, 2), dtype=np.float32))


def test_make_resident_keeps_values_and_pickles():
    record = ArrayRecord({"a": Array(np.array([1.5, -2.0])), "b": Array(np.array([[3]], dtype=np.int64))})
    make_resident(record)
    assert all(isinstance(array, ResidentArray) for array in record.values())
    restored = pickle.loads(pickle.dumps(record))  # the workers engine pickles messages
    np.testing.assert_array_equal(restored["a"].numpy(), [1.5, -2.0])
    assert restored["b"].numpy().dtype == np.int64


@pytest.mark.parametrize("resident", [True, False])
def test_load_weights_equals_load_state_dict(resident):
    torch.manual_seed(0)
    source, expected, model = (torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(3))
    source[1].running_mean.fill_(0.25)
    source[1].num_batches_tracked.fill_(4)
    record = resident_record(source.state_dict()) if resident else ArrayRecord(source.state_dict())
    expected.load_state_dict(source.state_dict())
    load_weights(model, record)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_load_weights_refuses_other_names_or_shapes():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(KeyError, match="missing"):
        load_weights(model, resident_record({"weight": torch.zeros(2, 3)}))
    with pytest.raises(ValueError, match="shape"):
        load_weights(model, resident_record({"weight": torch.zeros(3, 2), "bias": torch.zeros(2)}))
