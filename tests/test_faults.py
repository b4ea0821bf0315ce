"""Injected faults: seeded failing clients, their replies, their records, and rounds whose clients all fail."""

import numpy as np
import pytest
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedsim.config.checks import ConfigError, FedsimWarning
from fedsim.failures import load_failures
from fedsim.faults import FAULT_KEY, INJECTED_ERROR, InjectedFaults, draw_failures, faults_mod
from fedsim.flower_internals import ErrorCode, set_task_identity
from fedsim.plan import check_options
from fedsim.recording import NO_REPLY, ClientsFailed
from fedsim.results import load
from fedsim.runner import run
from fedsim.sampling import NodeSubsetGrid, sample_partitions
from tests.conftest import compose_config

NODE_PARTITIONS = {200 + 5 * p: p for p in range(10)}
CONTEXT = Context(run_id=7, node_id=1, node_config={}, state=RecordDict(), run_config={})


@pytest.fixture(autouse=True)
def task_identity():
    set_task_identity(run_id=7, node_id=0)


def test_each_client_fails_with_the_dropout_probability_drawn_from_the_seed():
    assert draw_failures(0, 1, 10, 0.0) == frozenset()
    assert draw_failures(0, 1, 10, 1.0) == frozenset(range(10))
    assert draw_failures(4, 2, 10, 0.3) == draw_failures(4, 2, 10, 0.3)
    assert any(draw_failures(4, r, 10, 0.3) != draw_failures(4, 2, 10, 0.3) for r in range(3, 8))
    failed = sum(len(draw_failures(1, r, 50, 0.3)) for r in range(1, 201))  # 10,000 draws, std ~ 46
    assert abs(failed - 3000) < 5 * np.sqrt(10_000 * 0.3 * 0.7)


def test_the_wrapper_marks_the_failing_clients_messages_with_the_kind():
    wrapper = InjectedFaults(FedAvg(min_train_nodes=1, min_available_nodes=1), NODE_PARTITIONS, 0.4, "error", seed=3)
    messages = wrapper.configure_train(2, ArrayRecord(), ConfigRecord({"lr": 0.1}), NodeSubsetGrid(None, list(NODE_PARTITIONS)))
    marked = {NODE_PARTITIONS[m.metadata.dst_node_id]: m.content["config"].get(FAULT_KEY) for m in messages}
    failing = draw_failures(3, 2, 10, 0.4)
    assert marked == {p: ("error" if p in failing else None) for p in range(10)}


def train_message(config: dict) -> Message:
    return Message(RecordDict({"config": ConfigRecord(config)}), dst_node_id=1, message_type=MessageType.TRAIN)


def never_called(message, context):
    raise AssertionError("a failing client does not train")


def answered(message, context):
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=message)


def test_the_mod_answers_a_marked_message_with_the_fault_and_passes_the_others():
    silent = faults_mod(train_message({FAULT_KEY: "no_reply"}), CONTEXT, never_called)
    assert silent.has_error()
    assert (silent.error.code, silent.error.reason) == (ErrorCode.REPLY_MESSAGE_UNAVAILABLE, NO_REPLY)
    failed = faults_mod(train_message({FAULT_KEY: "error"}), CONTEXT, never_called)
    assert (failed.error.code, failed.error.reason) == (ErrorCode.CLIENT_APP_RAISED_EXCEPTION, INJECTED_ERROR)
    assert not faults_mod(train_message({"lr": 0.1}), CONTEXT, answered).has_error()
    query = Message(RecordDict(), dst_node_id=1, message_type=MessageType.QUERY)
    assert not faults_mod(query, CONTEXT, answered).has_error()


@pytest.mark.parametrize(("kind", "reason"), [("no_reply", NO_REPLY), ("error", INJECTED_ERROR)])
def test_a_run_goes_on_and_records_the_drawn_failures(tmp_path, kind, reason):
    cfg = compose_config("num_clients=8", "clients_per_round=6", "faults.dropout=0.3", f"faults.kind={kind}")
    run(cfg, tmp_path, quiet=True)
    failures = load_failures(tmp_path)
    for server_round in (1, 2):
        drawn = sample_partitions(cfg.seed, server_round, "train", 8, 6)
        expected = sorted(set(drawn) & draw_failures(cfg.seed, server_round, 8, 0.3))
        assert sorted(failures[failures["round"] == server_round]["client"]) == expected
    assert len(failures) > 0 and set(failures["stage"]) == {"train"} and set(failures["reason"]) == {reason}
    frame = load(tmp_path)
    system = frame[frame["stage"] == "system"]
    counts = system[system["metric"] == "train_failures"].set_index("round")["value"]
    assert counts.to_dict() == {r: float((failures["round"] == r).sum()) for r in (1, 2)}


def test_a_round_whose_clients_all_fail_is_skipped_with_one_warning(tmp_path):
    # seed 1 over 3 clients at dropout 0.6: all three fail in round 1, partition 1 trains in round 2
    overrides = ("seed=1", "num_clients=3", "faults.dropout=0.6")
    assert draw_failures(1, 1, 3, 0.6) == {0, 1, 2} and draw_failures(1, 2, 3, 0.6) == {0, 2}
    with pytest.warns(FedsimWarning, match=r"^every client failed in round 1 \(train; the first error: no reply\)"):
        run(compose_config(*overrides), tmp_path, quiet=True)
    frame = load(tmp_path)
    accuracy = frame[(frame["stage"] == "centralized") & (frame["metric"] == "accuracy")].set_index("round")["value"]
    assert accuracy[0] == accuracy[1] != accuracy[2]  # round 1 left the global model as it was; round 2 trained
    assert len(load_failures(tmp_path)) == 3 + 2
    assert set(frame[(frame["stage"] == "train") & (frame["metric"] == "loss")]["round"]) == {2}
    assert yaml.safe_load((tmp_path / "status.yaml").read_text())["status"] == "completed"


def test_a_run_whose_every_round_fails_ends_failed_even_when_rounds_are_skipped(tmp_path):
    with pytest.raises(ClientsFailed, match=r"^every client failed in every round's training; the first error: no reply"):
        with pytest.warns(FedsimWarning, match="every client failed in round 1"):
            run(compose_config("faults.dropout=1.0"), tmp_path, quiet=True)
    assert len(load_failures(tmp_path)) == 10  # 5 clients x 2 rounds, all on record
    assert yaml.safe_load((tmp_path / "status.yaml").read_text())["status"] == "failed"


def test_a_round_whose_clients_all_fail_stops_the_run_if_asked(tmp_path):
    with pytest.raises(ClientsFailed, match="every client failed in round 1 \\(train\\); the first error: no reply"):
        run(compose_config("faults.dropout=1.0", "faults.all_failed=stop"), tmp_path, quiet=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("faults.dropout=1.5", "faults.dropout must be a probability in [0, 1] (got 1.5)."),
        ("faults.dropout=-0.1", "faults.dropout must be a probability in [0, 1] (got -0.1)."),
        ("faults.kind=crash", "faults.kind must be one of no_reply, error (got crash)."),
        ("faults.all_failed=retry", "faults.all_failed must be one of skip, stop (got retry)."),
        ("+faults.delay=1", "faults.delay is not a fedsim setting; the faults settings are: all_failed, dropout, kind."),
    ],
)
def test_a_bad_fault_setting_is_refused_in_one_sentence(override, message):
    with pytest.raises(ConfigError) as raised:
        check_options(compose_config(override))
    assert str(raised.value) == message
