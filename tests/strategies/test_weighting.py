"""strategy.weighting: each averaging strategy's round against hand-computed means, the robust ones refuse it, a run."""

import numpy as np
import pytest
from flwr.app import ConfigRecord, MetricRecord, RecordDict

from fedsim.config import ConfigError
from fedsim.plan import build_plan, build_strategy
from fedsim.settings import RunSettings
from strategies.fednova import FACTOR_KEY
from strategies.scaffold import CONTROL_DELTA_KEY
from tests.conftest import compose_config
from tests.option_files import option_names, option_node
from tests.strategies.helpers import grid, per_client, record, replies_to, run_table, values

# Two clients: A holds 1 training example and sends w = [0, 8], B holds 3 and sends w = [4, 0].
# Uniform: ([0, 8] + [4, 0]) / 2 = [2, 4]. By examples: (1 [0, 8] + 3 [4, 0]) / 4 = [3, 2].
MEANS = {"uniform": [2.0, 4.0], "examples": [3.0, 2.0]}
GLOBAL = [1.0, 1.0]
# Their train losses 1 and 5: the round's train loss is the mean over examples, (1 + 3 * 5) / 4 = 4,
# whatever the weighting (the uniform mean would be 3).
EXAMPLE_MEAN_LOSS = 4.0

# Strategies whose first round from GLOBAL gives the clients' weighted mean itself (the settings make it so).
TO_THE_MEAN = {
    "fedavg": [],
    "fedprox": [],  # the proximal term is the clients'
    "fedbn": [],  # BatchNorm layers stay local on the clients; the server averages everything
    "ditto": [],  # personal models stay on the clients
    "fedavgm": [],  # server learning rate 1: the first momentum step is the pseudo-gradient itself
    "scaffold": [],  # eta_g = 1
    "fednova": [],  # equal local steps
    "multikrum": [],  # f = 0 selects every client
    "qfedavg": ["strategy.q=0"],  # q = 0: sum_k p_k L (x - w_k) / sum_k p_k L = x - (x - weighted mean)
    "centered_clipping": ["strategy.tau=1000"],  # no update is clipped: v = 0 + mean of the updates
    "norm_clipping": ["strategy.max_norm=1000"],  # no update is clipped
}
# FedAdam, FedYogi, FedAdagrad: the first moment after one round is (1 - beta_1) (mean - x).
SERVER_OPTIMIZERS = ["fedadam", "fedyogi", "fedadagrad"]
ROBUST = ["krum", "bulyan", "fedmedian", "fedtrimmedavg"]


def strategy_of(name: str, weighting: str, *overrides: str):
    """The strategy a tiny run (5 clients) of ``strategy=NAME strategy.weighting=WEIGHTING`` builds."""
    cfg = compose_config(f"strategy={name}", f"strategy.weighting={weighting}", *overrides)
    return build_strategy(cfg.strategy, RunSettings.from_config(cfg))


def reply(weights: list[float], num_examples: int, loss: float, **extra) -> RecordDict:
    reported = {"loss": loss, "train_loss": loss, "num-steps": 1, FACTOR_KEY: 1.0, "num-examples": num_examples}
    metrics = MetricRecord(reported)
    return RecordDict({"arrays": record(w=weights), **extra, "metrics": metrics})


def one_round(strategy, **extra):
    messages = list(strategy.configure_train(1, record(w=GLOBAL), ConfigRecord(), grid(2)))
    contents = [reply([0, 8], 1, loss=1.0, **extra), reply([4, 0], 3, loss=5.0, **extra)]
    return strategy.aggregate_train(1, replies_to(messages, contents))


def round_of(name: str, weighting: str, *overrides: str):
    strategy = strategy_of(name, weighting, *overrides)
    extra = {CONTROL_DELTA_KEY: record(w=[0, 0])} if name == "scaffold" else {}
    arrays, metrics = one_round(strategy, **extra)
    return strategy, values(arrays)["w"], metrics


def test_every_option_that_takes_a_weighting_is_tested_here():
    stated = {name for name in option_names("strategy") if "weighting" in option_node("strategy", name)}
    assert stated == {*TO_THE_MEAN, *SERVER_OPTIMIZERS, "feddyn", "rfa"}
    assert set(option_names("strategy")) - stated == set(ROBUST)


@pytest.mark.parametrize("weighting", ["uniform", "examples"])
@pytest.mark.parametrize("name", list(TO_THE_MEAN))
def test_a_round_averages_the_clients_by_the_weighting(name, weighting):
    _, new_global, metrics = round_of(name, weighting, *TO_THE_MEAN[name])
    np.testing.assert_allclose(new_global, MEANS[weighting], rtol=1e-6)
    assert metrics["loss"] == pytest.approx(EXAMPLE_MEAN_LOSS)


@pytest.mark.parametrize("weighting", ["uniform", "examples"])
@pytest.mark.parametrize("name", SERVER_OPTIMIZERS)
def test_server_optimizers_step_from_the_weighted_mean(name, weighting):
    strategy, _, metrics = round_of(name, weighting)
    mean = strategy.m_t["w"] / (1 - strategy.beta_1) + np.asarray(GLOBAL)
    np.testing.assert_allclose(mean, MEANS[weighting], rtol=1e-6)
    assert metrics["loss"] == pytest.approx(EXAMPLE_MEAN_LOSS)


@pytest.mark.parametrize(("weighting", "expected"), [("uniform", [2.4, 5.2]), ("examples", [3.4, 3.2])])
def test_feddyn_weights_the_mean_of_the_models_not_h(weighting, expected):
    # h = -alpha/N sum_k (theta_k - x) = -alpha/5 ([-1, 7] + [3, -1]) = -alpha [0.4, 1.2] for either weighting,
    # so x = mean - h / alpha = mean + [0.4, 1.2]
    strategy, new_global, _ = round_of("feddyn", weighting)
    np.testing.assert_allclose(strategy.h["w"], [-0.4 * strategy.alpha, -1.2 * strategy.alpha], rtol=1e-12)
    np.testing.assert_allclose(new_global, expected, rtol=1e-6)


# RFA's alpha_i. Uniform: from the midpoint both models are D/2 away, equal betas, it stays the mean. By
# examples: the mean z0 = a/4 + 3b/4 is 3D/4 from a = [0, 8] and D/4 from b = [4, 0] (D = ||a - b||), so
# betas (1/4) / (3D/4) and (3/4) / (D/4) and z1 = (a/3 + 3b) / (10/3) = a/10 + 9b/10; then 9D/10 and
# D/10 give betas 5/18 and 15/2 (over D) and z2 = a/28 + 27b/28 = [27/7, 2/7], two steps towards b.
@pytest.mark.parametrize(("weighting", "expected"), [("uniform", MEANS["uniform"]), ("examples", [27 / 7, 2 / 7])])
def test_rfa_weights_the_median_by_the_weighting(weighting, expected):
    _, new_global, metrics = round_of("rfa", weighting)  # the default 2 steps
    np.testing.assert_allclose(new_global, expected, rtol=1e-6)
    assert metrics["loss"] == pytest.approx(EXAMPLE_MEAN_LOSS)


@pytest.mark.parametrize("name", ROBUST)
def test_robust_aggregators_take_no_weighting(name):
    cfg = compose_config(f"strategy={name}", "+strategy.weighting=uniform")
    with pytest.raises(ConfigError) as raised:
        build_plan(cfg)
    assert str(raised.value).startswith(f"strategy.weighting is not a setting of {cfg.strategy._target_}; ")


def test_weighted_by_key_is_fedsims_and_the_weighting_is_a_word():
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config("+strategy.weighted_by_key=local-epochs"))
    assert str(raised.value) == "strategy.weighted_by_key is set by fedsim at run time; remove it from the config."
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config("strategy.weighting=samples"))
    assert str(raised.value) == "strategy.weighting must be one of examples, uniform (got 'samples')."


def test_uniform_weighting_runs_with_federated_evaluation(tmp_path, fedavg_rounds):
    frame, rounds = run_table(tmp_path, "strategy=fedavg", "strategy.weighting=uniform")
    # another global model than the example-weighted run's from the first round on
    assert rounds["centralized_loss"].iloc[1] != fedavg_rounds["centralized_loss"].iloc[1]
    assert rounds["centralized_loss"].iloc[-1] < rounds["centralized_loss"].iloc[0]
    # federated evaluation ran every round, and its aggregate is still the mean over the clients' examples
    accuracy, examples = per_client(frame, "federated", "accuracy"), per_client(frame, "federated", "num-examples")
    assert list(accuracy.index) == [1, 2, 3]
    expected = (accuracy * examples).sum(axis=1) / examples.sum(axis=1)
    np.testing.assert_allclose(rounds.loc[1:, "federated_accuracy"], expected, rtol=1e-12)
