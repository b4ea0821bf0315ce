"""Centered clipping: hand-computed rounds, the center kept between rounds, iterations, a run.

(A resumed run restores the center: tests/test_checkpoint.py.)
"""

import numpy as np
import pytest
from flwr.app import ConfigRecord

from strategies.centered_clipping import CenteredClipping
from tests.strategies.helpers import TAKE_ALL, assert_trains, client_reply, grid, record, replies_to, run_table, values


def one_round(strategy, server_round, global_arrays, models, num_examples):
    messages = list(strategy.configure_train(server_round, global_arrays, ConfigRecord(), grid(len(models))))
    contents = [client_reply(model, n) for model, n in zip(models, num_examples)]
    arrays, _ = strategy.aggregate_train(server_round, replies_to(messages, contents))
    return arrays


def test_updates_are_clipped_as_one_vector_around_the_previous_aggregate():
    strategy = CenteredClipping(tau=1.0, iterations=1, weighting="uniform", **TAKE_ALL)
    # round 1, center v = 0. A's update (w [3, 0], b [4]) has norm 5 over both arrays: clipped to
    # w [0.6, 0], b [0.8] (clipping each array alone would give w [1, 0], b [1]); B's update
    # (w [0, 0.5], b [0]) has norm 0.5 < tau and stays. v = their mean = w [0.3, 0.25], b [0.4].
    arrays = one_round(
        strategy, 1, record(w=[1, 1], b=[0]), [record(w=[4, 1], b=[4]), record(w=[1, 1.5], b=[0])], [1, 3]
    )
    np.testing.assert_allclose(values(arrays)["w"], [1.3, 1.25], rtol=1e-6)
    np.testing.assert_allclose(values(arrays)["b"], [0.4], rtol=1e-6)
    np.testing.assert_allclose(strategy.center["w"], [0.3, 0.25], rtol=1e-6)

    # round 2 starts at that center: A's update is v + (b: 2), 2 away from it, clipped to v + (b: 1);
    # B's update is v itself (no deviation to clip). v <- v + ((b: 1) + 0) / 2 = w [0.3, 0.25], b [0.9].
    # (From a zero center A's update would be clipped from norm 2.43 to 1.)
    x = values(arrays)
    models = [record(w=x["w"] + [0.3, 0.25], b=x["b"] + [2.4]), record(w=x["w"] + [0.3, 0.25], b=x["b"] + [0.4])]
    arrays = one_round(strategy, 2, arrays, models, [1, 3])
    np.testing.assert_allclose(values(arrays)["w"], [1.6, 1.5], rtol=1e-6)
    np.testing.assert_allclose(values(arrays)["b"], [1.3], rtol=1e-6)
    np.testing.assert_allclose(strategy.center["b"], [0.9], rtol=1e-6)


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [
        # updates 10, 0, 1 (1, 1 and 2 examples), tau 1. Uniform: v1 = (1 + 0 + 1) / 3 = 2/3; the deviations
        # 28/3, -2/3, 1/3 clip to 1, -2/3, 1/3: v2 = 2/3 + (2/3) / 3 = 8/9.
        ("uniform", 8 / 9),
        # By examples: v1 = (1 + 0 + 2 * 1) / 4 = 3/4; deviations 37/4, -3/4, 1/4 clip to 1, -3/4, 1/4:
        # v2 = 3/4 + (1 - 3/4 + 2/4) / 4 = 15/16.
        ("examples", 15 / 16),
    ],
)
def test_each_iteration_clips_around_the_moved_center(weighting, expected):
    strategy = CenteredClipping(tau=1.0, iterations=2, weighting=weighting, **TAKE_ALL)
    arrays = one_round(strategy, 1, record(w=[5]), [record(w=[15]), record(w=[5]), record(w=[6])], [1, 1, 2])
    np.testing.assert_allclose(values(arrays)["w"], [5 + expected], rtol=1e-6)


def test_a_run_trains(tmp_path):
    _, rounds = run_table(tmp_path, "strategy=centered_clipping")
    assert_trains(rounds)
