"""The privacy of a run, settled before training: checks that need the data, the noise, the strategy wrappers."""

import warnings
from dataclasses import dataclass

from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig
from torch import nn

from fedsim.config import ConfigError
from fedsim.data import Federation
from fedsim.privacy.accounting import noise_for_budget
from fedsim.privacy.central import CentralAccountant, central_dp_wrapper
from fedsim.privacy.client_epsilons import ClientEpsilons
from fedsim.privacy.local import NOISE_KEY, batches_per_epoch, check_model

CENTRAL_MECHANISMS = ("central_dp", "central_dp_adaptive")


@dataclass(frozen=True)
class PrivacyPlan:
    """What the server does for the configured privacy mechanism.

    Attributes
    ----------
    cfg : DictConfig
        The run's config.
    noise_multiplier : float
        The noise multiplier of the run: configured, or computed once from
        ``privacy.target_epsilon`` for every step the run may take (0 without privacy).
    """

    cfg: DictConfig
    noise_multiplier: float = 0.0

    @property
    def mechanism(self) -> str:
        return self.cfg.privacy.mechanism

    @property
    def train_config(self) -> dict[str, float]:
        """What the training messages carry besides lr, epochs and batch size."""
        return {NOISE_KEY: self.noise_multiplier} if self.mechanism == "local_dp" else {}

    def wrap(self, strategy: Strategy) -> Strategy:
        """``strategy`` with the wrappers of the mechanism (none without privacy)."""
        cfg = self.cfg
        if self.mechanism == "local_dp":
            return ClientEpsilons(strategy)
        if self.mechanism in CENTRAL_MECHANISMS:
            dp = central_dp_wrapper(strategy, cfg.privacy, self.noise_multiplier, cfg.clients_per_round)
            rate = cfg.clients_per_round / cfg.num_clients
            return CentralAccountant(
                dp, self.noise_multiplier, rate, cfg.privacy.target_delta, cfg.privacy.accountant, cfg.seed
            )
        return strategy


def train_sizes(federation: Federation) -> list[int]:
    """Every client's number of local training examples, without materializing its tensors.

    The same split as ``Federation``: ``eval_fraction`` of a partition (at least one
    example, at most all but one) is kept for evaluation.
    """
    sizes = []
    for partition_id in range(federation.num_clients):
        size = len(federation.partitioner.load_partition(partition_id))
        sizes.append(size - min(size - 1, max(1, round(federation.eval_fraction * size))))
    return sizes


def plan_privacy(cfg: DictConfig, federation: Federation, model: nn.Module) -> PrivacyPlan:
    """Check what the privacy settings need from the data and model, and settle the noise.

    Raises ConfigError (one sentence) for a model Opacus cannot train or a target
    epsilon no noise reaches; warns when delta is larger than 1 / the smallest client
    dataset (local DP) or 1 / num_clients (central DP): a mechanism that publishes
    one record in the clear would then meet the guarantee.
    """
    privacy = cfg.privacy
    if privacy.mechanism == "local_dp":
        check_model(model, cfg.model._target_.rsplit(".", 1)[-1])
        sizes = train_sizes(federation)
        _warn_large_delta(privacy.target_delta, min(sizes), "the smallest client dataset")
        if privacy.target_epsilon is None:
            return PrivacyPlan(cfg, float(privacy.noise_multiplier))
        # The worst client takes the fewest steps per epoch: at rate 1/k for R*E*k steps,
        # the privacy cost grows as the number k of batches per epoch shrinks.
        fewest = min(batches_per_epoch(size, cfg.client.batch_size) for size in sizes)
        steps = cfg.num_rounds * cfg.client.local_epochs * fewest
        noise = noise_for_budget(
            privacy.target_epsilon, privacy.target_delta, 1 / fewest, steps, privacy.accountant, "privacy.target_epsilon"
        )
        return PrivacyPlan(cfg, noise)
    if privacy.mechanism in CENTRAL_MECHANISMS:
        _warn_large_delta(privacy.target_delta, cfg.num_clients, "num_clients")
        if privacy.target_epsilon is None:
            noise = float(privacy.noise_multiplier)
        else:
            rate = cfg.clients_per_round / cfg.num_clients
            noise = noise_for_budget(
                privacy.target_epsilon, privacy.target_delta, rate, cfg.num_rounds, privacy.accountant,
                "privacy.target_epsilon",
            )
        if privacy.mechanism == "central_dp_adaptive":
            _check_adaptive_noise(noise, privacy.clipped_count_stddev, cfg.clients_per_round)
        return PrivacyPlan(cfg, noise)
    return PrivacyPlan(cfg)


def _check_adaptive_noise(noise: float, clipped_count_stddev: float | None, clients_per_round: int) -> None:
    """Adaptive clipping spends part of the noise on the clipped count (Andrew et al. 2021),
    which needs noise_multiplier < 2 * clipped_count_stddev."""
    stddev = clients_per_round / 20 if clipped_count_stddev is None else clipped_count_stddev
    if noise > 0 and noise >= 2 * stddev:
        raise ConfigError(
            f"privacy=central_dp_adaptive needs a noise multiplier below 2 * privacy.clipped_count_stddev = {2 * stddev:g} "
            f"(got {noise:.4g}; the stddev defaults to clients_per_round / 20): raise privacy.clipped_count_stddev."
        )


def _warn_large_delta(delta: float, population: int, what: str) -> None:
    if delta > 1 / population:
        warnings.warn(
            f"privacy.target_delta={delta} is larger than 1 / {what} (1/{population} = {1 / population:.3g}): "
            "a mechanism that publishes one record in the clear meets such a guarantee.",
            stacklevel=3,
        )
