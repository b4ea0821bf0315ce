"""Model poisoning by the malicious clients themselves: a flipped, random or boosted update.

Each option's client half is an ``UpdateAttack`` the training message carries; the
client trains honestly and ``attack_mod`` replaces the update in its reply.
"""

import dataclasses
import math

import numpy as np

from fedsim.attacks.base import Attack
from fedsim.attacks.client import UpdateAttack
from fedsim.config.checks import require
from fedsim.seeds import stream_seed


@dataclasses.dataclass(frozen=True)
class FlipUpdate(UpdateAttack):
    """Send the negated update."""

    def poison_updates(self, updates):
        return {name: -update for name, update in updates.items()}


@dataclasses.dataclass(frozen=True)
class NoiseUpdate(UpdateAttack):
    """Send Gaussian noise of std ``std`` in place of the update, drawn from ``seed`` in the arrays' order."""

    std: float
    seed: int

    def poison_updates(self, updates):
        rng = np.random.default_rng(self.seed)
        return {name: rng.normal(0.0, self.std, size=update.shape) for name, update in updates.items()}


@dataclasses.dataclass(frozen=True)
class ScaleUpdate(UpdateAttack):
    """Send the update multiplied by ``factor``."""

    factor: float

    def poison_updates(self, updates):
        return {name: self.factor * update for name, update in updates.items()}


def require_positive(name: str, value: float) -> None:
    require(math.isfinite(value) and value > 0, f"attack.{name} must be greater than 0 and finite (got {value}).")


class SignFlip(Attack):
    """Sign flipping: each malicious client sends the negation of its honest update (``attack=sign_flip``).

    The sign-flipping Byzantine attack of Li et al. (2019), "RSA: Byzantine-Robust
    Stochastic Aggregation Methods for Distributed Learning from Heterogeneous Datasets".
    """

    def client_attack(self, seed, server_round, partition):
        return FlipUpdate()


class Gaussian(Attack):
    """Gaussian noise: each malicious client replaces its update with N(0, std^2) noise (``attack=gaussian``).

    The Gaussian Byzantine workers of Blanchard et al. (2017), "Machine Learning with
    Adversaries: Byzantine Tolerant Gradient Descent". The noise is drawn from the
    ``attack`` stream of the seed tree (round, partition), so reruns send the same noise.

    Parameters
    ----------
    fraction : float
        As for every attack.
    std : float
        Standard deviation of every coordinate of the noise, greater than 0.
    """

    def __init__(self, *, fraction: float, std: float) -> None:
        super().__init__(fraction=fraction)
        require_positive("std", std)
        self.std = std

    def client_attack(self, seed, server_round, partition):
        return NoiseUpdate(std=self.std, seed=stream_seed(seed, "attack", server_round, partition))


class Scaling(Attack):
    """Scaling: each malicious client boosts its update by ``factor`` (``attack=scaling``).

    The boosting of model replacement (Bagdasaryan et al. 2020, "How To Backdoor
    Federated Learning"): a factor of about n / (the server's learning rate) makes one
    client's update replace the average of n.

    Parameters
    ----------
    fraction : float
        As for every attack.
    factor : float
        The update's multiplier, greater than 0.
    """

    def __init__(self, *, fraction: float, factor: float) -> None:
        super().__init__(fraction=fraction)
        require_positive("factor", factor)
        self.factor = factor

    def client_attack(self, seed, server_round, partition):
        return ScaleUpdate(factor=self.factor)
