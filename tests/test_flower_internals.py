"""Each Flower and flwr-datasets internal fedsim uses still exists and behaves as fedsim assumes.

Run this first after upgrading flwr or flwr-datasets: every failure names what changed
and the fedsim module that relies on it. The internals themselves live in
fedsim/flower_internals.py.
"""

import dataclasses
import inspect
import subprocess
import sys
import typing
import warnings
from collections.abc import Callable

import datasets
import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    FedAvg,
)
from flwr_datasets import partitioner as flwr_partitioners

from fedsim.flower_internals import (
    KEY_CLIPPING_NORM,
    KEY_NORM_BIT,
    ErrorCode,
    Run,
    check_and_log_replies,
    compute_adaptive_clip_model_update,
    create_run,
    partition_indices,
    ray_backend_class,
    set_message_id,
    set_task_identity,
    validate_message_reply_consistency,
)
from fedsim.resident import ResidentArray, make_resident
from fedsim.sampling import NodeSubsetGrid

# The identity the other tests' messages are built with; tests here that change it restore it.
TEST_RUN_ID, TEST_NODE_ID = 7, 0


def instruction(dst_node_id: int = 5) -> Message:
    return Message(RecordDict(), dst_node_id=dst_node_id, message_type="train")


def train_reply(to: Message, num_examples: int, **extra_arrays: ArrayRecord) -> Message:
    """A training reply as fedsim's clients send one: arrays, metrics, maybe more ArrayRecords."""
    content = RecordDict({
        "arrays": ArrayRecord({"w": Array(np.ones(2, dtype=np.float32))}),
        **extra_arrays,
        "metrics": MetricRecord({"num-examples": num_examples, KEY_NORM_BIT: 1}),
    })
    return Message(content, reply_to=to)


def error_of(call: Callable[[], object]) -> str:
    """The message of the exception ``call()`` raises; "" when it raises none."""
    try:
        call()
    except Exception as error:  # pylint: disable=broad-exception-caught
        return str(error) or type(error).__name__
    return ""


@pytest.fixture(autouse=True)
def task_identity():
    set_task_identity(run_id=TEST_RUN_ID, node_id=TEST_NODE_ID)
    yield
    set_task_identity(run_id=TEST_RUN_ID, node_id=TEST_NODE_ID)


# --- importing ----------------------------------------------------------------------------------


def test_importing_the_internals_does_not_import_ray():
    check = "import sys, fedsim.flower_internals, fedsim.engines.ray; print('ray' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False"], (
        "importing fedsim.flower_internals or fedsim.engines.ray now imports Ray; "
        "fedsim/flower_internals.py must import Flower's Ray backend only inside ray_backend_class."
    )


# --- Run ------------------------------------------------------------------------------------------


def test_create_run_makes_the_run_a_grid_holds():
    run = create_run(5)
    assert isinstance(run, Run) and run.run_id == 5, (
        "Run.create_empty(run_id) no longer gives a Run with that id; fix create_run in fedsim/flower_internals.py."
    )
    hints = typing.get_type_hints(Grid.set_run)
    assert hints.get("run") is Run, (
        f"Flower's Grid.set_run now takes {hints.get('run')!r}, not flwr.supercore.run.Run; "
        "fedsim/flower_internals.py (Run, create_run) and the grids of fedsim/engines/local.py "
        "and fedsim/sampling.py must follow it."
    )


# --- task identity -------------------------------------------------------------------------------


def test_messages_are_built_from_the_task_identity():
    set_task_identity(run_id=11, node_id=3, task_id=4)
    message = instruction(dst_node_id=5)
    metadata = message.metadata
    assert (metadata.run_id, metadata.src_node_id, metadata.src_task_id) == (11, 3, 4), (
        "Message() no longer reads the sender's run, node and task ids from flwr.supercore.task_identity."
        "TaskIdentity; fedsim/engines/local.py sets them through set_task_identity in fedsim/flower_internals.py."
    )
    assert metadata.dst_node_id == 5, "Message() no longer sets dst_node_id; fedsim/engines/local.py routes by it."


# --- message id -----------------------------------------------------------------------------------


def test_set_message_id_sets_the_id_replies_refer_to():
    message = instruction()
    set_message_id(message, "message-1")
    assert message.metadata.message_id == "message-1", (
        "Metadata no longer keeps its message id in __dict__['_message_id']; fix set_message_id in "
        "fedsim/flower_internals.py, which fedsim/engines/local.py uses to number pushed messages."
    )
    reply = Message(RecordDict(), reply_to=message)
    assert reply.metadata.reply_to_message_id == "message-1", (
        "a reply no longer carries the id of the message it answers; fedsim/engines/local.py relies on it."
    )


# --- error codes ----------------------------------------------------------------------------------


def test_error_codes_exist_and_make_error_replies():
    codes = {name: getattr(ErrorCode, name, None) for name in ("CLIENT_APP_RAISED_EXCEPTION", "CLIENT_APP_CRASHED")}
    assert all(isinstance(code, int) for code in codes.values()) and len(set(codes.values())) == 2, (
        f"flwr.common.constant.ErrorCode no longer has two distinct int codes {sorted(codes)} (got {codes}); "
        "fedsim/engines/replies.py and fedsim/engines/workers.py send them in error replies."
    )
    reply = Message(Error(code=codes["CLIENT_APP_CRASHED"], reason="gone"), reply_to=instruction())
    assert reply.has_error() and reply.error.code == codes["CLIENT_APP_CRASHED"], (
        "Message(Error(code, reason), reply_to=message) no longer makes an error reply; fedsim/engines/replies.py "
        "builds its error replies so."
    )


# --- Array fields (ResidentArray) --------------------------------------------------------------


def test_array_keeps_the_fields_resident_array_fills():
    fields = [field.name for field in dataclasses.fields(Array)]
    assert fields == ["dtype", "shape", "stype", "data"], (
        f"flwr.app.Array's fields are now {fields}; fedsim/resident.py (ResidentArray, through "
        "fill_numpy_array_fields in fedsim/flower_internals.py) fills dtype/shape/stype and overrides data."
    )
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    resident, flower = ResidentArray(values.copy()), Array(values.copy())
    assert (resident.dtype, resident.shape, resident.stype, resident.data) == (
        flower.dtype, flower.shape, flower.stype, flower.data
    ), "Array(ndarray) now sets other fields than ResidentArray does; fix fill_numpy_array_fields or fedsim/resident.py."


def test_resident_array_round_trips_through_flower_records():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    resident = ResidentArray(values.copy())

    kept = ArrayRecord()
    kept["w"] = resident
    assert kept["w"] is resident and np.array_equal(kept.to_numpy_ndarrays()[0], values), (
        "ArrayRecord no longer keeps an Array subclass as given and reads it through numpy(); "
        "fedsim/resident.py (resident_record, make_resident) relies on it."
    )

    rebuilt = ArrayRecord({"w": resident})  # Flower rebuilds plain Arrays from ``data``
    assert type(rebuilt["w"]) is Array and np.array_equal(rebuilt["w"].numpy(), values), (
        "ArrayRecord(dict) no longer copies an Array through its data into a plain Array; "
        "fedsim/resident.py overrides data for it."
    )

    # Flower's serialisation (deflate/inflate, as its transport does) reads the arrays through ``data``.
    assert resident.children.keys() == Array(values.copy()).children.keys(), (
        "Flower's serialisation of an Array no longer reads its bytes from Array.data; fedsim/resident.py "
        "overrides data to give them."
    )
    sent = ArrayRecord({"w": Array(values.copy())})
    arrays = {array.object_id: Array.inflate(array.deflate(), children=array.children) for array in sent.values()}
    received = ArrayRecord.inflate(sent.deflate(), children=arrays)
    make_resident(received)
    assert isinstance(received["w"], ResidentArray) and np.array_equal(received["w"].numpy(), values), (
        "an ArrayRecord deserialised by Flower no longer becomes resident with the same values; "
        "check make_resident in fedsim/resident.py."
    )


# --- FedAvg's reply checks ---------------------------------------------------------------------


def test_fedavg_check_and_log_replies_splits_and_validates():
    parameters = list(inspect.signature(FedAvg._check_and_log_replies).parameters)  # pylint: disable=protected-access
    assert parameters == ["self", "replies", "is_train", "validate"], (
        f"FedAvg._check_and_log_replies now takes {parameters}; fix check_and_log_replies in "
        "fedsim/flower_internals.py, which strategies/arrays.py (GlobalModelUpdate) calls."
    )
    sent = [instruction(1), instruction(2)]
    good = train_reply(sent[0], num_examples=3)
    failed = Message(Error(code=ErrorCode.CLIENT_APP_CRASHED, reason="gone"), reply_to=sent[1])
    valid, errors = check_and_log_replies(FedAvg(), [good, failed], is_train=True, validate=True)
    assert (valid, errors) == ([good], [failed]), (
        "FedAvg._check_and_log_replies no longer returns (valid replies, error replies); "
        "strategies/arrays.py relies on it."
    )

    extra = train_reply(sent[0], num_examples=3, controls=ArrayRecord({"c": Array(np.zeros(2))}))
    error = error_of(lambda: check_and_log_replies(FedAvg(), [extra], is_train=True, validate=True))
    assert "ArrayRecord" in error, (
        "FedAvg._check_and_log_replies(validate=True) no longer refuses a training reply with two ArrayRecords; "
        "strategies/arrays.py (replies_carry_extra_arrays) assumes it does."
    )
    valid, _ = check_and_log_replies(FedAvg(), [extra], is_train=True, validate=False)
    assert valid == [extra], (
        "FedAvg._check_and_log_replies(validate=False) now checks the replies; strategies/arrays.py "
        "relies on skipping the check for replies that carry extra ArrayRecords."
    )


def test_validate_message_reply_consistency_checks_metrics_without_the_array_check():
    extra = train_reply(instruction(), num_examples=3, controls=ArrayRecord({"c": Array(np.zeros(2))}))
    parameters = list(inspect.signature(validate_message_reply_consistency).parameters)
    assert parameters == ["replies", "weighted_by_key", "check_arrayrecord"], (
        f"validate_message_reply_consistency now takes {parameters}; strategies/arrays.py calls it."
    )
    unweighted = Message(RecordDict({"metrics": MetricRecord({"loss": 1.0})}), reply_to=instruction())
    errors = [
        error_of(lambda: validate_message_reply_consistency([extra.content], "num-examples", check_arrayrecord=False)),
        error_of(lambda: validate_message_reply_consistency([extra.content], "num-examples", check_arrayrecord=True)),
        error_of(lambda: validate_message_reply_consistency([unweighted.content], "num-examples", check_arrayrecord=False)),
    ]
    assert errors[0] == "" and "ArrayRecord" in errors[1] and "num-examples" in errors[2], (
        "validate_message_reply_consistency no longer checks the metrics (and the one ArrayRecord only when "
        f"check_arrayrecord is set) as strategies/arrays.py assumes (errors: {errors})."
    )


# --- differential privacy -----------------------------------------------------------------------


def test_compute_adaptive_clip_model_update_clips_in_place_and_reports_it():
    sent = [np.zeros(2)]
    trained = [np.array([3.0, 4.0])]  # an update of norm 5
    clipped = compute_adaptive_clip_model_update(trained, sent, 1.0)
    assert clipped is True, (
        "compute_adaptive_clip_model_update no longer returns whether it clipped; fedsim/privacy/central.py "
        "reports it as the norm bit."
    )
    np.testing.assert_allclose(trained[0], [0.6, 0.8], err_msg=(
        "compute_adaptive_clip_model_update no longer clips (param1 - param2) in place in param1; "
        "fedsim/privacy/central.py (clip_update) relies on it."
    ))
    trained = [np.array([3.0, 4.0])]
    clipped = compute_adaptive_clip_model_update(trained, sent, 10.0)
    assert clipped is False and np.array_equal(trained[0], [3.0, 4.0]), (
        "compute_adaptive_clip_model_update now changes an update within the clipping norm; "
        "fedsim/privacy/central.py (clip_update) relies on it leaving it alone."
    )


def test_client_side_wrappers_use_the_clipping_norm_and_norm_bit_keys():
    wrapper = DifferentialPrivacyClientSideFixedClipping(FedAvg(), 1.0, 2.5, 2)
    arrays = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})
    messages = list(wrapper.configure_train(1, arrays, ConfigRecord(), NodeSubsetGrid(None, [1, 2])))
    norms = [next(iter(message.content.config_records.values())).get(KEY_CLIPPING_NORM) for message in messages]
    assert norms == [2.5, 2.5], (
        f"Flower's client-side DP wrappers no longer send the clipping norm as {KEY_CLIPPING_NORM!r}; "
        "fedsim/privacy/central.py reads it from the train config."
    )

    adaptive = DifferentialPrivacyClientSideAdaptiveClipping(FedAvg(), 1.0, 2, clipped_count_stddev=1.0)
    sent = [instruction(1), instruction(2)]
    state = np.random.get_state()  # the wrapper draws its noise from numpy's global generator
    try:
        aggregated, _ = adaptive.aggregate_train(1, [train_reply(m, num_examples=2) for m in sent])
    finally:
        np.random.set_state(state)
    no_bit = Message(RecordDict({
        "arrays": ArrayRecord({"w": Array(np.ones(2, dtype=np.float32))}),
        "metrics": MetricRecord({"num-examples": 2}),
    }), reply_to=sent[0])
    assert aggregated is not None and KEY_NORM_BIT in error_of(lambda: adaptive.aggregate_train(1, [no_bit])), (
        f"Flower's client-side adaptive-clipping wrapper no longer reads the norm bit as {KEY_NORM_BIT!r}; "
        "fedsim/privacy/central.py reports it under that key."
    )


# --- Ray backend ---------------------------------------------------------------------------------


def test_ray_backend_has_the_build_terminate_and_pool_fedsim_replaces(monkeypatch):
    backend_class = ray_backend_class()  # imports Ray; starts nothing
    for method, expected in (("build", ["self", "app_fn"]), ("terminate", ["self"])):
        parameters = list(inspect.signature(getattr(backend_class, method)).parameters)
        assert parameters == expected, (
            f"Flower's RayBackend.{method} now takes {parameters}; fedsim/engines/ray.py (ray_kept_running) "
            "replaces it with a function of the old signature."
        )

    module = sys.modules[backend_class.__module__]
    assert hasattr(module, "BasicActorPool"), (
        "Flower's Ray backend no longer builds a BasicActorPool; fedsim/engines/ray.py keeps one between runs."
    )
    assert hasattr(backend_class, "init_ray"), "RayBackend has no init_ray any more; update this test to skip Ray."
    monkeypatch.setattr(backend_class, "init_ray", lambda self, config: None)  # no Ray runtime
    resources = {"num_cpus": 1, "num_gpus": 0.0}
    backend = backend_class({"client_resources": resources})
    assert backend.pool is None and backend.client_resources == resources, (
        "a new RayBackend no longer has pool None and the configured client_resources; "
        "fedsim/engines/ray.py reads both."
    )

    class Pool:  # stands in for BasicActorPool, which would start actors
        actors_capacity = 2

        def __init__(self, **_):
            self.num_actors = 0

        def add_actors_to_pool(self, num_actors):
            self.num_actors += num_actors

    monkeypatch.setattr(module, "BasicActorPool", Pool)
    app_fn = object()
    backend.build(app_fn)
    assert isinstance(backend.pool, Pool) and backend.app_fn is app_fn, (
        "RayBackend.build no longer stores its actor pool as backend.pool and the app as backend.app_fn; "
        "fedsim/engines/ray.py hands a kept pool to the next run through them."
    )


def test_basic_actor_pool_has_what_fedsim_keeps_and_ends(monkeypatch):
    module = sys.modules[ray_backend_class().__module__]
    pool_class = module.BasicActorPool
    actor_module = sys.modules[pool_class.__module__]
    monkeypatch.setattr(actor_module, "pool_size_from_resources", lambda resources: 2)  # would ask Ray
    pool = pool_class(actor_type=object, client_resources={"num_cpus": 1}, actor_kwargs={})
    assert pool.pool == [] and pool.num_actors == 0, (
        "BasicActorPool no longer has the idle-actor list pool and num_actors; "
        "fedsim/engines/ray.py (keep_idle_actors, end_idle_actors) reads both."
    )


# --- flwr-datasets partition index lists ---------------------------------------------------------


def small_dataset() -> datasets.Dataset:
    n = 60
    return datasets.Dataset.from_dict({"row": list(range(n)), "label": [i % 3 for i in range(n)], "user": [i % 4 for i in range(n)]})


PARTITIONERS = {
    "dirichlet": lambda: flwr_partitioners.DirichletPartitioner(
        num_partitions=3, partition_by="label", alpha=1.0, min_partition_size=0, seed=0
    ),
    "pathological": lambda: flwr_partitioners.PathologicalPartitioner(
        num_partitions=3, partition_by="label", num_classes_per_partition=2, seed=0
    ),
    "shards": lambda: flwr_partitioners.ShardPartitioner(
        num_partitions=3, partition_by="label", num_shards_per_partition=2, seed=0
    ),
    "natural": lambda: flwr_partitioners.NaturalIdPartitioner(partition_by="user"),
}


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_partitioners_keep_the_rows_load_partition_returns(name):
    partitioner = PARTITIONERS[name]()
    partitioner.dataset = small_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        partitioner.load_partition(0)  # fills the index lists of every partition
    for partition_id in range(partitioner.num_partitions):
        indices = partition_indices(partitioner, partition_id)
        assert indices is not None, (
            f"flwr-datasets' {type(partitioner).__name__} no longer keeps _partition_id_to_indices after "
            "load_partition; fedsim/data/partitioners.py (partition_rows) would load every partition instead."
        )
        rows = partitioner.dataset["row"]  # after load_partition: ShardPartitioner sorts its dataset first
        assert list(partitioner.load_partition(partition_id)["row"]) == [rows[i] for i in indices], (
            f"{type(partitioner).__name__}.load_partition no longer returns the rows of partitioner.dataset at "
            "_partition_id_to_indices, in order; fedsim/data/partitioners.py (partition_rows) relies on it."
        )
