"""RFA: smoothed Weiszfeld steps against an independent computation, the median they reach, a run.

(Two steps by hand, with either weighting: tests/strategies/test_weighting.py.)
"""

import numpy as np
from flwr.app import ConfigRecord

from strategies.rfa import RFA, geometric_median
from tests.strategies.helpers import TAKE_ALL, assert_trains, client_reply, grid, record, replies_to, run_table, values


def rfa_round(strategy, models, num_examples):
    messages = list(strategy.configure_train(1, models[0], ConfigRecord(), grid(len(models))))
    contents = [client_reply(model, n) for model, n in zip(models, num_examples)]
    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    return values(arrays)


def weiszfeld(points: np.ndarray, alphas: np.ndarray, nu: float, steps: int) -> np.ndarray:
    """The smoothed Weiszfeld iteration on the rows of ``points``, from their weighted mean."""
    z = alphas @ points / alphas.sum()
    for _ in range(steps):
        betas = alphas / np.maximum(nu, np.linalg.norm(points - z, axis=1))
        z = betas @ points / betas.sum()
    return z


def test_the_median_is_of_the_whole_model_as_one_vector():
    rng = np.random.default_rng(3)
    models = [{"w": rng.normal(size=(2, 3)), "b": rng.normal(size=4)} for _ in range(5)]
    examples = [3, 1, 4, 1, 5]
    points = np.stack([np.concatenate([m["w"].astype(np.float32).ravel(), m["b"].astype(np.float32)]) for m in models])
    expected = weiszfeld(points.astype(np.float64), np.asarray(examples, dtype=np.float64), 1e-6, steps=3)

    strategy = RFA(nu=1e-6, max_iterations=3, tolerance=0.0, weighting="examples", **TAKE_ALL)
    median = rfa_round(strategy, [record(w=m["w"].tolist(), b=m["b"].tolist()) for m in models], examples)
    np.testing.assert_allclose(median["w"].ravel(), expected[:6], rtol=1e-5)
    np.testing.assert_allclose(median["b"], expected[6:], rtol=1e-5)


def test_enough_steps_reach_the_median_which_ignores_a_far_outlier():
    # In one dimension the geometric median is the median: 2 for 0, 1, 2, 3, 1000 (the mean is 201.2).
    points = [{"w": np.array([t])} for t in (0.0, 1.0, 2.0, 3.0, 1000.0)]
    median = geometric_median(points, [1.0] * 5, nu=1e-6, max_iterations=50, tolerance=0.0)
    np.testing.assert_allclose(median["w"], [2.0], atol=1e-6)


def test_the_tolerance_stops_the_steps_early():
    points = [{"w": np.array([t])} for t in (0.0, 1.0, 2.0, 3.0, 1000.0)]
    one_step = geometric_median(points, [1.0] * 5, nu=1e-6, max_iterations=1, tolerance=0.0)
    # the first step lowers the objective by far less than 10 times its value: it is the last
    stopped = geometric_median(points, [1.0] * 5, nu=1e-6, max_iterations=50, tolerance=10.0)
    np.testing.assert_array_equal(stopped["w"], one_step["w"])
    assert abs(stopped["w"][0] - 2.0) > 1  # still far from the median


def test_a_run_trains(tmp_path):
    _, rounds = run_table(tmp_path, "strategy=rfa")
    assert_trains(rounds)
