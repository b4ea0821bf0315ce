"""Norm clipping against backdoors: every client's update clipped to one norm, optionally with weak DP noise (Sun et al. 2019).

Sun, Kairouz, Suresh, McMahan. "Can You Really Backdoor Federated Learning?"
arXiv:1911.07963, 2019.
"""

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord

from fedsim.config.checks import require
from fedsim.seeds import generator
from strategies.arrays import GlobalModelUpdate, as_float64, clip_to_norm, to_record, weighted_mean

NOISE_STREAM = "aggregate-noise"


class NormClipping(GlobalModelUpdate):
    """Norm bounding: x <- x + sum_i p_i clip_M(y_i - x) (+ N(0, sigma^2 I) with weak DP).

    y_i - x is client i's update (its model minus the global model x it was sent) and
    clip_M(z) = z min(1, M / ||z||), the norm taken over every array of the model as one
    vector, so a boosted (model-replacement) backdoor update counts no more than an
    update of norm M. With ``noise_std`` sigma > 0 the new global model gets Gaussian
    noise of standard deviation sigma in every coordinate, the paper's "weak
    differential privacy", drawn from the run's seed (stream ``aggregate-noise``, keyed
    by the round), so a rerun draws the same noise. No privacy is accounted: for a
    guarantee use ``privacy=central_dp``, which clips to ``privacy.clipping_norm``, adds
    noise of standard deviation noise_multiplier * clipping_norm / clients_per_round and
    accounts epsilon.

    Parameters
    ----------
    max_norm : float
        M, the norm every update is clipped to (greater than 0).
    noise_std : float
        sigma, the standard deviation of the noise added to the aggregate (at least 0;
        0 adds none).
    weighting : str
        p_i: ``uniform`` (1 / |S|, so no client's update counts more than M / |S|
        whatever it reports) or ``examples`` (n_i / n, which trusts the example counts
        the clients report).
    seed : int
        The run's seed (fedsim passes it).
    **fedavg_args
        Passed to ``FedAvg``.
    """

    def __init__(self, *, max_norm: float, noise_std: float, weighting: str, seed: int, **fedavg_args) -> None:
        require(max_norm > 0, f"strategy.max_norm must be greater than 0 (got {max_norm}).")
        require(noise_std >= 0, f"strategy.noise_std must be at least 0 (got {noise_std}).")
        super().__init__(weighting=weighting, **fedavg_args)
        self.max_norm = max_norm
        self.noise_std = noise_std
        self.seed = seed

    def next_global(self, x, contents):
        trained = [as_float64(content[self.arrayrecord_key]) for content in contents]
        clipped = [clip_to_norm({key: y[key] - x[key] for key in x}, self.max_norm) for y in trained]
        mean_update = weighted_mean(clipped, self.client_weights(contents))
        return {key: x[key] + mean_update[key] for key in x}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None or self.noise_std == 0:
            return arrays, metrics
        noise = generator(self.seed, NOISE_STREAM, server_round)
        noisy = {key: value + noise.normal(0.0, self.noise_std, value.shape) for key, value in as_float64(arrays).items()}
        return to_record(noisy, like=arrays), metrics
