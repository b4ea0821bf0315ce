"""Learning-rate schedules: hand-computed rates, what the messages carry and metrics.csv records, bad values."""

import math
import random

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from fedsim.config import ConfigError
from fedsim.instantiate import build
from fedsim.plan import build_plan
from fedsim.results import load
from fedsim.runner import run
from tests.conftest import compose_config
from tests.option_files import option_node

COS_QUARTER = math.cos(math.pi / 4)  # 0.70710678...
HAND_COMPUTED = [
    ("constant", {}, [0.1, 0.1, 0.1, 0.1, 0.1]),
    ("exponential", {"gamma": 0.5}, [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    ("step", {"gamma": 0.1, "every": 2}, [0.1, 0.1, 0.01, 0.01, 0.001]),
    ("step", {"gamma": 0.5, "every": 1}, [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    # over 4 rounds: lr (1 + cos(pi (r - 1) / 4)) / 2; a fifth round would train at min_lr
    ("cosine", {"min_lr": 0.0}, [0.1, 0.05 * (1 + COS_QUARTER), 0.05, 0.05 * (1 - COS_QUARTER), 0.0]),
    ("cosine", {"min_lr": 0.02}, [0.1, 0.02 + 0.04 * (1 + COS_QUARTER), 0.06, 0.02 + 0.04 * (1 - COS_QUARTER), 0.02]),
]


def schedule(name: str, lr: float = 0.1, num_rounds: int = 4, **settings):
    node = option_node("lr_schedule", name)
    for key, value in settings.items():
        node[key] = value
    return build(node, lr=lr, num_rounds=num_rounds)


@pytest.mark.parametrize(("name", "settings", "rates"), HAND_COMPUTED, ids=lambda v: str(v))
def test_each_rounds_rate_matches_the_hand_computed_one(name, settings, rates):
    computed = [schedule(name, **settings).lr_at(server_round) for server_round in range(1, 6)]
    np.testing.assert_allclose(computed, rates, rtol=1e-12, atol=1e-15)


def test_the_constant_schedule_sends_client_lr_itself():
    assert schedule("constant", lr=0.05).lr_at(7) == 0.05  # the same float: plain runs stay bit-identical


def test_the_messages_and_metrics_csv_carry_each_rounds_rate(tmp_path):
    overrides = ["num_rounds=4", "lr_schedule=exponential", "lr_schedule.gamma=0.5", "client.lr=0.08"]
    plan = build_plan(compose_config(*overrides))
    assert [plan.train_config(r)["lr"] for r in (1, 2, 3, 4)] == pytest.approx([0.08, 0.04, 0.02, 0.01], abs=1e-15)
    run(compose_config(*overrides), tmp_path, quiet=True)
    frame = load(tmp_path)
    rates = frame[(frame["stage"] == "train") & (frame["metric"] == "lr") & frame["client"].isna()]
    assert rates.set_index("round")["value"].to_dict() == pytest.approx({1: 0.08, 2: 0.04, 3: 0.02, 4: 0.01})


def test_workers_train_with_the_rates_the_server_sends(tmp_path):
    """The server computes every round's rate, so worker processes record the serial run's metrics bit for bit."""
    frames = {}
    for workers in (0, 2):
        random.seed(0)  # Flower's FedAvg orders its messages with Python's global random
        cfg = compose_config(
            "num_rounds=3", "lr_schedule=cosine", "optimizer.momentum=0.9", "optimizer.keep_state=true",
            "clients_per_round=3", f"engine.workers={workers}",
        )
        run(cfg, tmp_path / str(workers), quiet=True)
        frame = load(tmp_path / str(workers))
        frame = frame[frame["metric"] != "round_seconds"]
        frames[workers] = frame.set_index(["round", "stage", "client", "metric"])["value"].sort_index()
    assert frames[0].index.equals(frames[2].index)
    np.testing.assert_array_equal(frames[2].values, frames[0].values)
    assert frames[0][(3, "train", np.nan, "lr")] == pytest.approx(0.05 * (1 + math.cos(2 * math.pi / 3)) / 2)


BAD_VALUES = [
    ("exponential", {"gamma": 0.0}, "lr_schedule.gamma must be in (0, 1] (got 0.0)."),
    ("exponential", {"gamma": 1.5}, "lr_schedule.gamma must be in (0, 1] (got 1.5)."),
    ("step", {"gamma": -0.5}, "lr_schedule.gamma must be in (0, 1] (got -0.5)."),
    ("step", {"every": 0}, "lr_schedule.every must be at least 1 (got 0)."),
    ("cosine", {"min_lr": -0.01}, "lr_schedule.min_lr must be at least 0 and at most client.lr=0.1 (got -0.01)."),
    ("cosine", {"min_lr": 0.2}, "lr_schedule.min_lr must be at least 0 and at most client.lr=0.1 (got 0.2)."),
]


@pytest.mark.parametrize(("name", "settings", "message"), BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_a_bad_setting_is_one_sentence(name, settings, message):
    with pytest.raises(ConfigError) as raised:
        schedule(name, **settings)
    assert str(raised.value) == message


def test_a_bad_setting_stops_the_plan_before_training():
    with pytest.raises(ConfigError, match=r"^lr_schedule.every must be at least 1 \(got 0\).$"):
        build_plan(compose_config("lr_schedule=step", "lr_schedule.every=0"))


def test_an_unknown_schedule_lists_the_valid_ones():
    options = r"(?s)Could not find 'lr_schedule/linear'.*constant.*cosine.*exponential.*step"
    with pytest.raises(ConfigCompositionException, match=options):
        compose_config("lr_schedule=linear")


def test_the_schedule_gets_lr_and_num_rounds_from_the_run_and_a_config_cannot_set_them():
    with pytest.raises(ConfigError, match=r"^lr_schedule.num_rounds is set by fedsim at run time"):
        build_plan(compose_config("+lr_schedule.num_rounds=10"))
