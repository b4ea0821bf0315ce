"""Central differential privacy: Flower's clipping-and-noise wrappers, a server-side accountant, client-side clipping."""

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy
from flwr.supercore.differential_privacy import (
    KEY_CLIPPING_NORM,
    KEY_NORM_BIT,
    compute_adaptive_clip_model_update,
)
from omegaconf import DictConfig

from fedsim.privacy.accounting import History, epsilon_spent
from fedsim.strategy_wrapper import StrategyWrapper

_NOISE_STREAM = 3  # after sampling's train (0) and evaluate (1) and the stragglers' (2) streams
# The metric a client-side clipping client reports: 1 if its update was clipped (Flower's norm bit,
# which adaptive clipping counts; its mean over clients is the share of clipped updates).
CLIPPED_METRIC = KEY_NORM_BIT


def central_dp_wrapper(strategy: Strategy, privacy: DictConfig, noise_multiplier: float, clients_per_round: int) -> Strategy:
    """``strategy`` wrapped in the Flower central-DP wrapper ``privacy`` names.

    ``privacy.side`` chooses who clips each update: the server (``...ServerSide...``)
    or the client (``...ClientSide...``; fedsim's train handler clips, see
    ``clip_update``). The mechanism ``central_dp`` clips to a fixed norm,
    ``central_dp_adaptive`` adapts the norm towards a quantile of the update norms
    (Andrew et al. 2021).
    """
    from flwr.serverapp import strategy as flower

    if privacy.mechanism == "central_dp":
        wrapper = {
            "server": flower.DifferentialPrivacyServerSideFixedClipping,
            "client": flower.DifferentialPrivacyClientSideFixedClipping,
        }[privacy.side]
        return wrapper(strategy, noise_multiplier, privacy.clipping_norm, clients_per_round)
    wrapper = {
        "server": flower.DifferentialPrivacyServerSideAdaptiveClipping,
        "client": flower.DifferentialPrivacyClientSideAdaptiveClipping,
    }[privacy.side]
    return wrapper(
        strategy,
        noise_multiplier,
        clients_per_round,
        initial_clipping_norm=privacy.initial_clipping_norm,
        target_clipped_quantile=privacy.target_clipped_quantile,
        clip_norm_lr=privacy.clip_norm_lr,
        clipped_count_stddev=privacy.clipped_count_stddev,
    )


def clip_update(sent: ArrayRecord, trained: ArrayRecord, clipping_norm: float) -> tuple[ArrayRecord, bool]:
    """Client-side clipping: ``trained`` moved towards ``sent`` until the update's norm
    is at most ``clipping_norm``, and whether it had to move.

    The same computation as Flower's ``fixedclipping_mod``/``adaptiveclipping_mod``,
    done in fedsim's train handler because those mods refuse messages that carry more
    than one ArrayRecord.
    """
    arrays = trained.to_numpy_ndarrays()
    clipped = compute_adaptive_clip_model_update(arrays, sent.to_numpy_ndarrays(), clipping_norm)
    return ArrayRecord({key: Array(np.asarray(a)) for key, a in zip(trained.keys(), arrays, strict=True)}), clipped


def clipping_norm_of(config: ConfigRecord) -> float | None:
    """The norm a client-side clipping wrapper asks the client to clip to, if any."""
    return float(config[KEY_CLIPPING_NORM]) if KEY_CLIPPING_NORM in config else None


@contextlib.contextmanager
def seeded_numpy(seed: int, server_round: int) -> Iterator[None]:
    """Seed numpy's global generator, which Flower's wrappers draw their noise from,
    from (seed, round); restore it afterwards. The noise is then the same on rerun
    and on every engine."""
    saved = np.random.get_state()
    np.random.seed(np.random.SeedSequence([seed, server_round, _NOISE_STREAM]).generate_state(1)[0])
    try:
        yield
    finally:
        np.random.set_state(saved)


class CentralAccountant(StrategyWrapper):
    """Wrap a central-DP wrapper: seed its noise and record the epsilon spent each round.

    Each round that releases an aggregate composes one step of the Gaussian mechanism
    with noise multiplier ``noise_multiplier``, sampled at rate clients_per_round /
    num_clients. fedsim draws a fixed number of clients per round; accounting treats
    the draw as Poisson sampling at that rate, the standard approximation in DP-FedAvg
    (McMahan et al. 2018). The epsilon at ``delta`` after the round is returned in the
    aggregated train metrics as ``epsilon`` (client-level privacy; the clients'
    reported metrics are not covered).

    Parameters
    ----------
    strategy : Strategy
        A Flower central-DP wrapper (see ``central_dp_wrapper``).
    noise_multiplier : float
        The noise multiplier accounted for: the configured one (adaptive clipping
        splits it between the update and the clipped count, Andrew et al. 2021).
    sample_rate : float
        clients_per_round / num_clients.
    delta : float
        The delta epsilon is reported at.
    accountant : str
        ``"rdp"`` or ``"prv"``.
    seed : int
        Seed of the noise.
    """

    def __init__(
        self, strategy: Strategy, noise_multiplier: float, sample_rate: float, delta: float, accountant: str, seed: int
    ) -> None:
        super().__init__(strategy)
        self.noise_multiplier = noise_multiplier
        self.sample_rate = sample_rate
        self.delta = delta
        self.accountant = accountant
        self.seed = seed
        self.history: History = []

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        with seeded_numpy(self.seed, server_round):
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        steps = self.history[-1][2] + 1 if self.history else 1
        self.history = [(self.noise_multiplier, self.sample_rate, steps)]
        metrics = MetricRecord(dict(metrics or {}))
        metrics["epsilon"] = epsilon_spent(self.history, self.delta, self.accountant)
        return arrays, metrics
