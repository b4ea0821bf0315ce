"""Centered clipping: the clients' updates clipped around the previous round's aggregate (Karimireddy et al. 2021).

Karimireddy, He, Jaggi. "Learning from History for Byzantine Robust Optimization."
ICML 2021.
"""

import numpy as np

from fedsim.config.checks import require
from strategies.arrays import GlobalModelUpdate, as_float64, clip_to_norm, weighted_mean


class CenteredClipping(GlobalModelUpdate):
    """Centered clipping's server: v <- v + sum_i p_i clip_tau(x_i - v), ``iterations`` times; x <- x + v.

    x_i = y_i - x is client i's update (its model minus the global model x it was sent)
    and clip_tau(z) = z min(1, tau / ||z||), the norm taken over every array of the
    model as one vector. The center v starts each round at the previous round's
    aggregate (zero before the first), the paper's "learning from history": an honest
    update that moves the way the last rounds moved is barely clipped, and a client
    far from that history pulls v by at most p_i tau per iteration. v is server state
    kept between rounds (and in checkpoints). The paper's workers send momentum
    vectors; here clients send the update of their local training, so tau is in the
    units of a round's update.

    With tau larger than every ||x_i - v|| a round is FedAvg of the same weighting.

    Parameters
    ----------
    tau : float
        The clipping radius around the center (greater than 0).
    iterations : int
        L, the clipping iterations per round (at least 1); the paper shows L = 1
        suffices with worker momentum and the center started at the previous aggregate.
    weighting : str
        p_i: ``uniform`` (1 / |S|, the paper's, which bounds every client's pull by
        tau / |S| whatever it reports) or ``examples`` (n_i / n, which trusts the
        example counts the clients report).
    **fedavg_args
        Passed to ``FedAvg``.
    """

    checkpointed = (*GlobalModelUpdate.checkpointed, "center")

    def __init__(self, *, tau: float, iterations: int, weighting: str, **fedavg_args) -> None:
        require(tau > 0, f"strategy.tau (the clipping radius) must be greater than 0 (got {tau}).")
        require(iterations >= 1, f"strategy.iterations must be at least 1 (got {iterations}).")
        super().__init__(weighting=weighting, **fedavg_args)
        self.tau = tau
        self.iterations = iterations
        self.center: dict[str, np.ndarray] | None = None

    def next_global(self, x, contents):
        trained = [as_float64(content[self.arrayrecord_key]) for content in contents]
        updates = [{key: y[key] - x[key] for key in x} for y in trained]
        weights = self.client_weights(contents)
        center = self.center if self.center is not None else {key: np.zeros_like(value) for key, value in x.items()}
        for _ in range(self.iterations):
            clipped = [clip_to_norm({key: update[key] - center[key] for key in x}, self.tau) for update in updates]
            step = weighted_mean(clipped, weights)
            center = {key: center[key] + step[key] for key in x}
        self.center = center
        return {key: x[key] + center[key] for key in x}
