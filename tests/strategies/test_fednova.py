"""FedNova: normalized averaging against hand-computed values, FedAvg when steps are equal, a run."""

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg

from fedsim.client_half import client_half_class, client_half_path
from strategies.fednova import FACTOR_KEY, FedNova, FedNovaClient
from tests.strategies import helpers
from tests.strategies.helpers import TAKE_ALL, assert_trains, grid, record, replies_to, run_table, values


def client_reply(arrays, num_examples, num_steps):
    """A FedNova client's reply after plain SGD, whose normalizing factor is its number of steps."""
    content = helpers.client_reply(arrays, num_examples, num_steps=num_steps)
    content["metrics"][FACTOR_KEY] = float(num_steps)
    return content


def aggregate(strategy, global_arrays, contents):
    messages = list(strategy.configure_train(1, global_arrays, ConfigRecord(), grid(len(contents))))
    return strategy.aggregate_train(1, replies_to(messages, contents))


def test_normalized_averaging_matches_hand_computed_values():
    contents = [
        client_reply(record(w=[0, 4]), num_examples=1, num_steps=2),  # d = (x - y) / 2 = [0.5, -1]
        client_reply(record(w=[3, 2]), num_examples=3, num_steps=4),  # d = [-0.5, 0]
    ]
    arrays, _ = aggregate(FedNova(weighting="examples", **TAKE_ALL), record(w=[1, 2]), contents)
    # p = [1/4, 3/4]; tau_eff = 2/4 + 12/4 = 3.5; sum p d = [-0.25, -0.25]; x - 3.5 * that
    np.testing.assert_allclose(values(arrays)["w"], [1.875, 2.875])
    fedavg, _ = aggregate(FedAvg(**TAKE_ALL), record(w=[1, 2]), contents)
    np.testing.assert_allclose(values(fedavg)["w"], [2.25, 2.5])  # what FedAvg would do instead


@pytest.mark.parametrize("steps", [1, 7])
def test_equal_local_steps_give_fedavg(steps):
    rng = np.random.default_rng(0)
    global_arrays = record(w=rng.normal(size=5).tolist(), b=rng.normal(size=2).tolist())
    contents = [
        client_reply(record(w=rng.normal(size=5).tolist(), b=rng.normal(size=2).tolist()), n, num_steps=steps)
        for n in (3, 10, 4)
    ]
    arrays, metrics = aggregate(FedNova(weighting="examples", **TAKE_ALL), global_arrays, contents)
    fedavg_arrays, fedavg_metrics = aggregate(FedAvg(**TAKE_ALL), global_arrays, contents)
    for key, value in values(fedavg_arrays).items():
        np.testing.assert_allclose(values(arrays)[key], value, atol=1e-6)
    assert metrics == fedavg_metrics


def test_a_client_running_more_steps_does_not_pull_the_model_harder():
    # both clients move 1 per step, client 1 along the first axis for 1 step, client 2 along
    # the second for 3 steps: FedAvg leans towards client 2, FedNova weighs the directions equally
    contents = [
        client_reply(record(w=[1, 0]), num_examples=1, num_steps=1),
        client_reply(record(w=[0, 3]), num_examples=1, num_steps=3),
    ]
    arrays, _ = aggregate(FedNova(weighting="examples", **TAKE_ALL), record(w=[0, 0]), contents)
    np.testing.assert_allclose(values(arrays)["w"], [1, 1])  # tau_eff = 2 steps along (1, 1) / 2
    fedavg, _ = aggregate(FedAvg(**TAKE_ALL), record(w=[0, 0]), contents)
    np.testing.assert_allclose(values(fedavg)["w"], [0.5, 1.5])


def test_the_client_half_is_fednovas():
    # the class path the server sends in every message names FedNova's client, which the ClientApp loads
    strategy = FedNova(weighting="examples", **TAKE_ALL)
    assert client_half_path(strategy) == "strategies.fednova.FedNovaClient"
    assert client_half_class(client_half_path(strategy)) is FedNovaClient


def test_a_run_trains(tmp_path):
    _, rounds = run_table(tmp_path, "strategy=fednova")
    assert_trains(rounds)
