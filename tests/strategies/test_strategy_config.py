"""The algorithms' options: defaults, N from the top-level num_clients, out-of-range values in one sentence."""

import pytest

from fedsim.apps import build_strategy
from fedsim.config import ConfigError, validate
from tests.conftest import compose_config


@pytest.mark.parametrize("name", ["scaffold", "feddyn"])
def test_the_number_of_clients_follows_the_federation(name):
    strategy = build_strategy(compose_config(f"strategy={name}", "num_clients=7", "clients_per_round=3"))
    assert strategy.num_clients == 7


def test_defaults_reach_the_strategies():
    assert build_strategy(compose_config("strategy=scaffold")).server_learning_rate == 1.0
    assert build_strategy(compose_config("strategy=feddyn")).alpha == 0.01
    assert build_strategy(compose_config("strategy=ditto")).proximal_lambda == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["strategy=scaffold", "strategy.server_learning_rate=0"],
            "strategy.server_learning_rate must be greater than 0 (got 0.0).",
        ),
        (["strategy=feddyn", "strategy.alpha=0"], "strategy.alpha must be greater than 0 (got 0.0)."),
        (
            ["strategy=ditto", "strategy.proximal_lambda=-0.5"],
            "strategy.proximal_lambda must be at least 0 (got -0.5).",
        ),
        (
            ["strategy=scaffold", "strategy.num_clients=3"],
            "strategy.num_clients must equal num_clients=5 (got 3); leave it at ${num_clients}.",
        ),
    ],
)
def test_out_of_range_values_fail_with_one_sentence(overrides, message):
    with pytest.raises(ConfigError) as raised:
        validate(compose_config(*overrides))
    assert str(raised.value) == message


def test_lambda_zero_is_allowed_it_trains_purely_local_personal_models():
    validate(compose_config("strategy=ditto", "strategy.proximal_lambda=0"))
