"""Epsilon spent and noise for a budget, checked against Google's dp-accounting."""

import math

import pytest
from flwr.app import RecordDict

from fedsim.config import ConfigError
from fedsim.privacy.accounting import epsilon_spent, load_history, noise_for_budget, store_history
from tests.privacy.reference import reference_epsilon


@pytest.mark.parametrize(
    ("accountant", "noise", "rate", "steps", "delta"),
    [("rdp", 1.0, 0.1, 100, 1e-5), ("rdp", 1.2, 1 / 7, 105, 1e-3), ("prv", 1.0, 0.1, 100, 1e-5)],
)
def test_epsilon_matches_dp_accounting_within_one_percent(accountant, noise, rate, steps, delta):
    ours = epsilon_spent([(noise, rate, steps)], delta, accountant)
    assert ours == pytest.approx(reference_epsilon([(noise, rate, steps)], delta, accountant), rel=0.01)


def test_a_history_of_several_runs_composes():
    history = [(1.0, 0.2, 30), (2.0, 0.1, 50)]
    assert epsilon_spent(history, 1e-5, "rdp") == pytest.approx(reference_epsilon(history, 1e-5, "rdp"), rel=0.01)


def test_epsilon_grows_with_steps_and_zero_noise_spends_everything():
    spent = [epsilon_spent([(1.0, 0.1, steps)], 1e-5, "rdp") for steps in (1, 10, 20, 40)]
    assert epsilon_spent([], 1e-5, "rdp") == 0 and all(0 < a < b for a, b in zip(spent, spent[1:]))
    assert epsilon_spent([(0.0, 0.1, 10)], 1e-5, "rdp") == math.inf


def test_history_survives_the_node_state():
    state = RecordDict()
    assert load_history(state, "key") == []
    store_history(state, "key", [(1.5, 0.25, 12), (1.5, 0.2, 3)])
    assert load_history(state, "key") == [(1.5, 0.25, 12), (1.5, 0.2, 3)]


def test_noise_for_a_budget_spends_most_of_it_and_no_more():
    noise = noise_for_budget(2.0, 1e-5, 0.1, 200, "rdp", "privacy.target_epsilon")
    spent = reference_epsilon([(noise, 0.1, 200)], 1e-5, "rdp")
    assert 0.8 * 2.0 < spent <= 2.0 * 1.01


def test_an_unreachable_budget_is_one_sentence():
    # RDP's largest order (63) bounds epsilon below by log(1/delta) / 62 = 0.186 at delta=1e-5.
    with pytest.raises(ConfigError, match=r"privacy.target_epsilon=0.1 cannot be reached in 10 steps"):
        noise_for_budget(0.1, 1e-5, 1.0, 10, "rdp", "privacy.target_epsilon")


def test_fewer_batches_per_epoch_cost_more_privacy():
    # The target-epsilon plan takes the client with the fewest batches per epoch k as the
    # worst case: at rate 1/k over epochs * k steps, epsilon shrinks as k grows.
    spent = [reference_epsilon([(1.0, 1 / k, 20 * k)], 1e-5, "rdp") for k in (1, 2, 3, 5, 8, 13, 40)]
    assert all(a > b for a, b in zip(spent, spent[1:]))
