"""The algorithms' options: defaults, N from the top-level num_clients, out-of-range values in one sentence."""

import pytest

from fedsim.config import ConfigError
from fedsim.plan import build_plan, build_strategy, check_options
from fedsim.settings import RunSettings
from tests.conftest import compose_config


def strategy_of(*overrides):
    """The strategy a run of ``fedsim OVERRIDES`` (tiny) builds."""
    cfg = compose_config(*overrides)
    return build_strategy(cfg.strategy, RunSettings.from_config(cfg))


@pytest.mark.parametrize("name", ["scaffold", "feddyn"])
def test_the_number_of_clients_follows_the_federation(name):
    strategy = strategy_of(f"strategy={name}", "num_clients=7", "clients_per_round=3")
    assert strategy.num_clients == 7


def test_defaults_reach_the_strategies():
    assert strategy_of("strategy=scaffold").server_learning_rate == 1.0
    assert strategy_of("strategy=feddyn").alpha == 0.01
    assert strategy_of("strategy=ditto").proximal_lambda == 0.1
    assert strategy_of("strategy=fedprox").proximal_mu == 0.1
    centered_clipping = strategy_of("strategy=centered_clipping")
    assert (centered_clipping.tau, centered_clipping.iterations, centered_clipping.weighting) == (1.0, 1, "uniform")
    rfa = strategy_of("strategy=rfa")
    assert (rfa.nu, rfa.max_iterations, rfa.tolerance, rfa.weighting) == (1e-6, 2, 1e-6, "examples")
    norm_clipping = strategy_of("strategy=norm_clipping", "seed=7")
    assert (norm_clipping.max_norm, norm_clipping.noise_std, norm_clipping.weighting) == (1.0, 0.0, "uniform")
    assert norm_clipping.seed == 7  # the run's


def test_multikrum_selects_all_but_the_assumed_byzantine_clients_by_default():
    # Blanchard et al.'s m = n - f: 7 clients per round, f = 2 -> 5 selected (Krum selects 1)
    strategy = strategy_of("strategy=multikrum", "num_clients=7", "strategy.num_malicious_nodes=2")
    assert strategy.num_nodes_to_select == 5
    assert strategy_of("strategy=multikrum", "num_clients=7", "strategy.num_nodes_to_select=2").num_nodes_to_select == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["strategy=scaffold", "strategy.server_learning_rate=0"],
            "strategy.server_learning_rate must be greater than 0 (got 0).",
        ),
        (
            ["strategy=scaffold", "strategy.server_learning_rate=0.0"],
            "strategy.server_learning_rate must be greater than 0 (got 0.0).",
        ),
        (["strategy=feddyn", "strategy.alpha=0"], "strategy.alpha must be greater than 0 (got 0)."),
        (
            ["strategy=ditto", "strategy.proximal_lambda=-0.5"],
            "strategy.proximal_lambda must be at least 0 (got -0.5).",
        ),
        (
            ["strategy=centered_clipping", "strategy.tau=0"],
            "strategy.tau (the clipping radius) must be greater than 0 (got 0).",
        ),
        (["strategy=centered_clipping", "strategy.iterations=0"], "strategy.iterations must be at least 1 (got 0)."),
        (["strategy=rfa", "strategy.nu=0.0"], "strategy.nu (the smoothing) must be greater than 0 (got 0.0)."),
        (["strategy=rfa", "strategy.max_iterations=0"], "strategy.max_iterations must be at least 1 (got 0)."),
        (["strategy=rfa", "strategy.tolerance=-1e-6"], "strategy.tolerance must be at least 0 (got -1e-06)."),
        (["strategy=rfa", "strategy.weighting=count"], "strategy.weighting must be one of examples, uniform (got 'count')."),
        (["strategy=norm_clipping", "strategy.max_norm=-1"], "strategy.max_norm must be greater than 0 (got -1)."),
        (["strategy=norm_clipping", "strategy.noise_std=-0.1"], "strategy.noise_std must be at least 0 (got -0.1)."),
        (
            # the run's seed reaches the strategy; a config cannot give it another
            ["strategy=norm_clipping", "+strategy.seed=3"],
            "strategy.seed is set by fedsim at run time; remove it from the config.",
        ),
        (
            # N is no setting any more: fedsim passes num_clients itself, so it cannot disagree
            ["strategy=scaffold", "+strategy.num_clients=3"],
            "strategy.num_clients is set by fedsim at run time; remove it from the config.",
        ),
    ],
)
def test_out_of_range_values_fail_with_one_sentence(overrides, message):
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config(*overrides))
    assert str(raised.value) == message


def test_num_clients_set_by_hand_is_refused_before_anything_is_built():
    with pytest.raises(ConfigError, match=r"^strategy\.num_clients is set by fedsim at run time"):
        check_options(compose_config("strategy=feddyn", "+strategy.num_clients=5"))


def test_lambda_zero_is_allowed_it_trains_purely_local_personal_models():
    plan = build_plan(compose_config("strategy=ditto", "strategy.proximal_lambda=0"))
    assert plan.strategy.proximal_lambda == 0
