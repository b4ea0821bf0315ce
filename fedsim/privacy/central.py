"""Central differential privacy: Flower's clipping-and-noise wrappers, a server-side accountant, client-side clipping."""

import contextlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord
from flwr.serverapp.strategy import Strategy

from fedsim.config.checks import require
from fedsim.flower_internals import KEY_CLIPPING_NORM, KEY_NORM_BIT, compute_adaptive_clip_model_update
from fedsim.privacy.accounting import History, epsilon_spent, noise_for_budget
from fedsim.privacy.mechanism import PrivacyMechanism, check_budget, require_positive, warn_large_delta
from fedsim.seeds import stream_seed
from fedsim.strategy_wrapper import StrategyWrapper

SIDES = ("server", "client")
# The metric a client-side clipping client reports: 1 if its update was clipped (Flower's norm bit,
# which adaptive clipping counts; its mean over clients is the share of clipped updates).
CLIPPED_METRIC = KEY_NORM_BIT


def clip_update(sent: ArrayRecord, trained: ArrayRecord, clipping_norm: float) -> tuple[ArrayRecord, bool]:
    """Client-side clipping: ``trained`` moved towards ``sent`` until the update's norm
    is at most ``clipping_norm``, and whether it had to move.

    The same computation as Flower's ``fixedclipping_mod``/``adaptiveclipping_mod``.
    """
    arrays = trained.to_numpy_ndarrays()
    clipped = compute_adaptive_clip_model_update(arrays, sent.to_numpy_ndarrays(), clipping_norm)
    return ArrayRecord({key: Array(np.asarray(a)) for key, a in zip(trained.keys(), arrays, strict=True)}), clipped


def clipping_norm_of(config: ConfigRecord) -> float | None:
    """The norm a client-side clipping wrapper asks the client to clip to, if any."""
    return float(config[KEY_CLIPPING_NORM]) if KEY_CLIPPING_NORM in config else None


def client_side_clipping_mod(
    message: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """A Flower client mod: clip the update of a training reply when the server asks for it.

    Flower's client-side DP wrappers put the clipping norm in the training config; this
    mod clips ``arrays`` of the reply (the trained model) towards the model the server
    sent and reports whether it had to (``CLIPPED_METRIC``, Flower's norm bit, which
    adaptive clipping counts). It does what Flower's ``fixedclipping_mod`` and
    ``adaptiveclipping_mod`` do, for replies that carry more than one ArrayRecord too
    (SCAFFOLD's control variates), which those mods refuse. Other messages pass as they are.
    """
    reply = call_next(message, context)
    if message.metadata.message_type != MessageType.TRAIN or reply.has_error():
        return reply
    clipping_norm = clipping_norm_of(message.content["config"])
    if clipping_norm is None:
        return reply
    arrays, clipped = clip_update(message.content["arrays"], reply.content["arrays"], clipping_norm)
    reply.content["arrays"] = arrays
    reply.content["metrics"][CLIPPED_METRIC] = int(clipped)
    return reply


@contextlib.contextmanager
def seeded_numpy(seed: int, server_round: int) -> Iterator[None]:
    """Seed numpy's global generator, which Flower's wrappers draw their noise from,
    from (seed, round); restore it afterwards. The noise is then the same on rerun
    and on every engine."""
    saved = np.random.get_state()
    np.random.seed(stream_seed(seed, "central-dp-noise", server_round))
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

    checkpointed = ("history",)  # server state between rounds (fedsim.checkpoint)

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


class CentralDP(PrivacyMechanism):
    """Client-level DP with fixed clipping: Flower's central-DP wrapper around the strategy (``privacy=central_dp``).

    Each client update is clipped to ``clipping_norm`` (by the server or by the client,
    ``side``), Gaussian noise of std noise_multiplier * clipping_norm / clients_per_round
    is added to the aggregate; epsilon is accounted with sampling rate
    clients_per_round / num_clients.

    Parameters
    ----------
    side : str
        ``"server"`` clips on the server; ``"client"`` has each client clip its update
        (``client_side_clipping_mod``).
    noise_multiplier, target_epsilon, target_delta, accountant
        As for ``LocalDP``; a target epsilon is met after num_rounds rounds.
    clipping_norm : float
        The norm updates are clipped to.
    """

    wrappers = {"server": "DifferentialPrivacyServerSideFixedClipping", "client": "DifferentialPrivacyClientSideFixedClipping"}

    def __init__(
        self,
        *,
        side: str,
        noise_multiplier: float | None,
        target_epsilon: float | None,
        target_delta: float,
        clipping_norm: float,
        accountant: str,
    ) -> None:
        self._set_budget(side, noise_multiplier, target_epsilon, target_delta, accountant)
        require_positive("clipping_norm", clipping_norm)
        self.clipping_norm = clipping_norm

    def _set_budget(
        self, side: str, noise_multiplier: float | None, target_epsilon: float | None, target_delta: float, accountant: str
    ) -> None:
        """Check and keep the settings every central-DP option has."""
        check_budget(noise_multiplier, target_epsilon, target_delta, accountant)
        require(side in SIDES, f"privacy.side must be one of {', '.join(SIDES)} (got {side}).")
        self.side = side
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.target_delta = target_delta
        self.accountant = accountant

    def prepare(self, settings, federation, model):
        warn_large_delta(self.target_delta, settings.num_clients, "num_clients")
        if self.target_epsilon is not None:
            self.noise_multiplier = noise_for_budget(
                self.target_epsilon, self.target_delta, settings.sample_rate, settings.num_rounds, self.accountant,
                "privacy.target_epsilon",
            )

    def check_strategy(self, strategy):
        weighting = getattr(strategy, "weighting", None)
        require(
            weighting != "examples",
            "privacy=central_dp's noise (noise_multiplier * clipping_norm / clients_per_round) covers a plain mean of "
            "the clipped updates, so it needs strategy.weighting=uniform: with examples weighting a client with more "
            "examples than the others moves the model further than the noise covers.",
        )

    def flower_wrapper(self, strategy: Strategy, clients_per_round: int) -> Strategy:
        """``strategy`` inside the Flower central-DP wrapper of ``side``."""
        from flwr.serverapp import strategy as flower

        wrapper = getattr(flower, self.wrappers[self.side])
        return wrapper(strategy, float(self.noise_multiplier), self.clipping_norm, clients_per_round)

    def wrap(self, strategy, settings, node_partitions):
        dp = self.flower_wrapper(strategy, settings.clients_per_round)
        return CentralAccountant(
            dp, float(self.noise_multiplier), settings.sample_rate, self.target_delta, self.accountant, settings.seed
        )


class CentralDPAdaptive(CentralDP):
    """Client-level DP with adaptive clipping (Andrew et al. 2021; ``privacy=central_dp_adaptive``).

    Flower's wrapper moves the clipping norm towards the ``target_clipped_quantile`` of
    the update norms, spending part of the noise on the clipped count; the noise
    multiplier must stay below 2 * clipped_count_stddev, which defaults to
    clients_per_round / 20.

    Parameters
    ----------
    side, noise_multiplier, target_epsilon, target_delta, accountant
        As for ``CentralDP``.
    initial_clipping_norm : float
        The clipping norm of the first round.
    target_clipped_quantile : float
        The share of updates that should be clipped, in [0, 1].
    clip_norm_lr : float
        The learning rate of the clipping norm.
    clipped_count_stddev : float | None
        Noise std of the clipped count; None: clients_per_round / 20.
    """

    wrappers = {
        "server": "DifferentialPrivacyServerSideAdaptiveClipping",
        "client": "DifferentialPrivacyClientSideAdaptiveClipping",
    }

    def __init__(  # pylint: disable=super-init-not-called  (no clipping_norm: the norm adapts)
        self,
        *,
        side: str,
        noise_multiplier: float | None,
        target_epsilon: float | None,
        target_delta: float,
        initial_clipping_norm: float,
        target_clipped_quantile: float,
        clip_norm_lr: float,
        clipped_count_stddev: float | None,
        accountant: str,
    ) -> None:
        self._set_budget(side, noise_multiplier, target_epsilon, target_delta, accountant)
        require_positive("initial_clipping_norm", initial_clipping_norm)
        require_positive("clip_norm_lr", clip_norm_lr)
        require(
            0 <= target_clipped_quantile <= 1,
            f"privacy.target_clipped_quantile must be in [0, 1] (got {target_clipped_quantile}).",
        )
        require(
            clipped_count_stddev is None or clipped_count_stddev >= 0,
            f"privacy.clipped_count_stddev must be at least 0 (got {clipped_count_stddev}).",
        )
        self.initial_clipping_norm = initial_clipping_norm
        self.target_clipped_quantile = target_clipped_quantile
        self.clip_norm_lr = clip_norm_lr
        self.clipped_count_stddev = clipped_count_stddev

    def prepare(self, settings, federation, model):
        super().prepare(settings, federation, model)
        # Adaptive clipping spends part of the noise on the clipped count (Andrew et al. 2021),
        # which needs noise_multiplier < 2 * clipped_count_stddev.
        stddev = settings.clients_per_round / 20 if self.clipped_count_stddev is None else self.clipped_count_stddev
        noise = self.noise_multiplier
        require(
            not (noise > 0 and noise >= 2 * stddev),
            f"privacy=central_dp_adaptive needs a noise multiplier below 2 * privacy.clipped_count_stddev = "
            f"{2 * stddev:g} (got {noise:.4g}; the stddev defaults to clients_per_round / 20): "
            "raise privacy.clipped_count_stddev.",
        )

    def flower_wrapper(self, strategy, clients_per_round):
        from flwr.serverapp import strategy as flower

        wrapper = getattr(flower, self.wrappers[self.side])
        return wrapper(
            strategy,
            float(self.noise_multiplier),
            clients_per_round,
            initial_clipping_norm=self.initial_clipping_norm,
            target_clipped_quantile=self.target_clipped_quantile,
            clip_norm_lr=self.clip_norm_lr,
            clipped_count_stddev=self.clipped_count_stddev,
        )
