"""RFA: the geometric median of the clients' models by the smoothed Weiszfeld algorithm (Pillutla et al. 2022).

Pillutla, Kakade, Harchaoui. "Robust Aggregation for Federated Learning." IEEE
Transactions on Signal Processing 70, 2022.
"""

import numpy as np
from flwr.app import ArrayRecord, RecordDict

from fedsim.config.checks import require
from strategies.arrays import as_float64, flat_norm, to_record, weighted_mean
from strategies.fedavg import FedAvg


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """||a - b||, the arrays taken together as one vector."""
    return flat_norm({key: a[key] - b[key] for key in a})


def geometric_median(
    points: list[dict[str, np.ndarray]], alphas: list[float], nu: float, max_iterations: int, tolerance: float
) -> dict[str, np.ndarray]:
    """The smoothed Weiszfeld algorithm's estimate of argmin_z sum_i alpha_i ||z - w_i|| (the w_i are ``points``).

    It starts at the alpha-weighted mean and repeats z <- sum_i beta_i w_i / sum_i beta_i
    with beta_i = alpha_i / max(nu, ||z - w_i||), at most ``max_iterations`` times, and
    stops early once a step lowers the objective by less than ``tolerance`` times its
    value (the stopping rule of the authors' code).
    """
    median = weighted_mean(points, alphas)
    distances = [distance(median, point) for point in points]
    objective = sum(alpha * d for alpha, d in zip(alphas, distances))
    for _ in range(max_iterations):
        betas = [alpha / max(nu, d) for alpha, d in zip(alphas, distances)]
        median = weighted_mean(points, betas)
        distances = [distance(median, point) for point in points]
        previous, objective = objective, sum(alpha * d for alpha, d in zip(alphas, distances))
        if abs(previous - objective) <= tolerance * objective:
            break
    return median


class RFA(FedAvg):
    """Robust Federated Aggregation: the next global model is the geometric median of the clients' models.

    Each round the server computes, over the flattened models w_i of the clients that
    replied (every array of the model as one vector), the smoothed Weiszfeld estimate of
    argmin_z sum_i alpha_i ||z - w_i|| (``geometric_median``). The median moves a
    bounded distance however far clients holding less than half of the weight move
    their models; the few Weiszfeld steps approach it from the weighted mean, each
    shrinking a far client's share of the estimate. Each step is a weighted average,
    which the paper computes under secure aggregation; here the server sees the models.

    Parameters
    ----------
    nu : float
        The smoothing (greater than 0): no distance counts as less than nu, so a model
        at the current estimate does not take all the weight.
    max_iterations : int
        Weiszfeld steps after the weighted mean (at least 1).
    tolerance : float
        Stop once a step lowers the objective by less than this share of it (at least
        0; 0 runs every step).
    weighting : str
        alpha_i: ``examples`` (n_i / n, the paper's, which trusts the example counts
        the clients report) or ``uniform`` (1 / |S|).
    **fedavg_args
        Passed to ``FedAvg``.
    """

    def __init__(self, *, nu: float, max_iterations: int, tolerance: float, weighting: str, **fedavg_args) -> None:
        require(nu > 0, f"strategy.nu (the smoothing) must be greater than 0 (got {nu}).")
        require(max_iterations >= 1, f"strategy.max_iterations must be at least 1 (got {max_iterations}).")
        require(tolerance >= 0, f"strategy.tolerance must be at least 0 (got {tolerance}).")
        super().__init__(weighting=weighting, **fedavg_args)
        self.nu = nu
        self.max_iterations = max_iterations
        self.tolerance = tolerance

    def average(self, contents: list[RecordDict]) -> ArrayRecord:
        """The geometric median of the replies' models, in place of their mean."""
        models = [as_float64(content[self.arrayrecord_key]) for content in contents]
        median = geometric_median(models, self.shares(contents), self.nu, self.max_iterations, self.tolerance)
        return to_record(median, like=contents[0][self.arrayrecord_key])
