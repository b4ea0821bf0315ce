"""Norm clipping: hand-computed clipped means, seeded weak-DP noise, a run."""

import numpy as np
import pytest
from flwr.app import ConfigRecord

from fedsim.seeds import generator
from strategies.norm_clipping import NormClipping
from tests.strategies.helpers import TAKE_ALL, assert_trains, client_reply, grid, record, replies_to, run_table, values

GLOBAL = {"w": [1.0, 1.0], "b": [0.0]}
# A's update (w [3, 0], b [4]) has norm 5 over both arrays: clipped to norm 1 it is w [0.6, 0], b [0.8]
# (clipping each array alone would give w [1, 0], b [1]). B's update (w [0, 0.5], b [0]) has norm 0.5 and stays.
MODELS = [{"w": [4.0, 1.0], "b": [4.0]}, {"w": [1.0, 1.5], "b": [0.0]}]
EXAMPLES = [1, 3]


def clipping_round(strategy, server_round=1):
    messages = list(strategy.configure_train(server_round, record(**GLOBAL), ConfigRecord(), grid(2)))
    contents = [client_reply(record(**model), n) for model, n in zip(MODELS, EXAMPLES)]
    arrays, _ = strategy.aggregate_train(server_round, replies_to(messages, contents))
    return values(arrays)


@pytest.mark.parametrize(
    ("weighting", "w", "b"),
    [
        # x + (w [0.6, 0], b [0.8]) / 2 + (w [0, 0.5], b [0]) / 2
        ("uniform", [1.3, 1.25], [0.4]),
        # x + (w [0.6, 0], b [0.8]) / 4 + 3 (w [0, 0.5], b [0]) / 4
        ("examples", [1.15, 1.375], [0.2]),
    ],
)
def test_each_update_is_clipped_as_one_vector_then_averaged(weighting, w, b):
    new_global = clipping_round(NormClipping(max_norm=1.0, noise_std=0.0, weighting=weighting, seed=0, **TAKE_ALL))
    np.testing.assert_allclose(new_global["w"], w, rtol=1e-6)
    np.testing.assert_allclose(new_global["b"], b, rtol=1e-6)


def test_weak_dp_noise_is_the_runs_seeded_draw_for_the_round():
    noisy = clipping_round(NormClipping(max_norm=1.0, noise_std=0.5, weighting="uniform", seed=4, **TAKE_ALL), 3)
    draws = generator(4, "aggregate-noise", 3)  # the arrays in the model's order: w, then b
    np.testing.assert_allclose(noisy["w"], np.array([1.3, 1.25]) + draws.normal(0.0, 0.5, 2), atol=1e-6)
    np.testing.assert_allclose(noisy["b"], np.array([0.4]) + draws.normal(0.0, 0.5, 1), atol=1e-6)
    # another round, another draw
    other = clipping_round(NormClipping(max_norm=1.0, noise_std=0.5, weighting="uniform", seed=4, **TAKE_ALL), 4)
    assert not np.allclose(other["w"], noisy["w"])


def test_a_run_trains(tmp_path):
    _, rounds = run_table(tmp_path, "strategy=norm_clipping", "strategy.noise_std=0.001")
    assert_trains(rounds)
