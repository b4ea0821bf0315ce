"""Learning-rate schedules across rounds (the ``lr_schedule`` config group): the clients' rate in each round.

The server computes each round's rate from ``client.lr`` and sends it in the training
messages (``lr``), so every engine, worker and resumed run trains with the same rates;
``metrics.csv`` records it as the ``train`` stage's ``lr`` of each round. Within a round
the rate is constant. fedsim passes ``lr`` (``client.lr``, the first round's rate) and
``num_rounds`` when it builds a schedule.
"""

import math
from dataclasses import dataclass

from fedsim.config.checks import require


@dataclass(frozen=True, kw_only=True)
class LearningRateSchedule:
    """The base of schedules: round r of ``num_rounds`` trains at ``lr_at(r)``; r = 1 at ``lr``."""

    lr: float
    num_rounds: int

    def lr_at(self, server_round: int) -> float:
        raise NotImplementedError


def _require_factor(gamma: float) -> None:
    require(0 < gamma <= 1, f"lr_schedule.gamma must be in (0, 1] (got {gamma}).")


@dataclass(frozen=True, kw_only=True)
class Constant(LearningRateSchedule):
    """``client.lr`` in every round."""

    def lr_at(self, server_round: int) -> float:
        return self.lr


@dataclass(frozen=True, kw_only=True)
class Exponential(LearningRateSchedule):
    """Decay by ``gamma`` per round: lr * gamma^(r - 1).

    Attributes
    ----------
    gamma : float
        The factor per round, in (0, 1].
    """

    gamma: float

    def __post_init__(self) -> None:
        _require_factor(self.gamma)

    def lr_at(self, server_round: int) -> float:
        return self.lr * self.gamma ** (server_round - 1)


@dataclass(frozen=True, kw_only=True)
class Step(LearningRateSchedule):
    """Decay by ``gamma`` every ``every`` rounds: lr * gamma^floor((r - 1) / every).

    Attributes
    ----------
    gamma : float
        The factor per step, in (0, 1].
    every : int
        Rounds between steps (at least 1).
    """

    gamma: float
    every: int

    def __post_init__(self) -> None:
        _require_factor(self.gamma)
        require(self.every >= 1, f"lr_schedule.every must be at least 1 (got {self.every}).")

    def lr_at(self, server_round: int) -> float:
        return self.lr * self.gamma ** ((server_round - 1) // self.every)


@dataclass(frozen=True, kw_only=True)
class Cosine(LearningRateSchedule):
    """Cosine annealing over the run, as torch's ``CosineAnnealingLR`` with T_max = num_rounds, one step per round.

    Round r trains at min_lr + (lr - min_lr) (1 + cos(pi (r - 1) / num_rounds)) / 2:
    ``lr`` in round 1, falling towards ``min_lr``, which the round after the last would reach.

    Attributes
    ----------
    min_lr : float
        The rate the schedule falls towards, in [0, client.lr].
    """

    min_lr: float

    def __post_init__(self) -> None:
        require(
            0 <= self.min_lr <= self.lr,
            f"lr_schedule.min_lr must be at least 0 and at most client.lr={self.lr} (got {self.min_lr}).",
        )

    def lr_at(self, server_round: int) -> float:
        progress = (server_round - 1) / self.num_rounds
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
