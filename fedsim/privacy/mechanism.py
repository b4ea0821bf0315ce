"""The base of privacy mechanisms (the ``privacy`` config group), and no privacy."""

import warnings
from typing import TYPE_CHECKING

from flwr.serverapp.strategy import Strategy

from fedsim.config.checks import FedsimWarning, require

if TYPE_CHECKING:
    from torch import nn

    from fedsim.data import Federation
    from fedsim.settings import RunSettings

ACCOUNTANTS = ("rdp", "prv")


class PrivacyMechanism:
    """A privacy option: what it checks before the run, sends clients, and wraps around the strategy.

    Subclasses override the hooks they need; the base is no privacy.
    """

    def prepare(self, settings: "RunSettings", federation: "Federation", model: "nn.Module") -> None:
        """Check what needs the data and the model, and settle the noise, before any engine starts."""

    def check_strategy(self, strategy: Strategy) -> None:
        """Raise ConfigError (one sentence) if this mechanism's guarantee fails for how ``strategy`` aggregates."""

    def train_config(self) -> dict[str, float | str | bool]:
        """What every training message carries for this mechanism (clients read it)."""
        return {}

    def wrap(self, strategy: Strategy, settings: "RunSettings", node_partitions: dict[int, int]) -> Strategy:
        """``strategy`` with this mechanism's server-side wrappers (``node_partitions``: partition id of every node id)."""
        return strategy


class NoPrivacy(PrivacyMechanism):
    """No differential privacy."""


def check_budget(noise_multiplier: float | None, target_epsilon: float | None, target_delta: float, accountant: str) -> None:
    """The checks every DP mechanism shares: noise or a target epsilon, delta, the accountant."""
    require(
        (noise_multiplier is None) != (target_epsilon is None),
        "give exactly one of privacy.noise_multiplier and privacy.target_epsilon "
        f"(got {noise_multiplier} and {target_epsilon}; set privacy.noise_multiplier=null to aim at a target epsilon).",
    )
    if noise_multiplier is not None:
        require(noise_multiplier >= 0, f"privacy.noise_multiplier must be at least 0 (got {noise_multiplier}).")
    if target_epsilon is not None:
        require(target_epsilon > 0, f"privacy.target_epsilon must be greater than 0 (got {target_epsilon}).")
    require(0 < target_delta < 1, f"privacy.target_delta must be strictly between 0 and 1 (got {target_delta}).")
    require(
        accountant in ACCOUNTANTS,
        f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)} (got {accountant}).",
    )


def require_positive(name: str, value: float) -> None:
    require(value > 0, f"privacy.{name} must be greater than 0 (got {value}).")


def warn_large_delta(delta: float, population: int, what: str) -> None:
    """Warn when delta exceeds 1 / population: publishing one record in the clear would meet the guarantee."""
    if delta > 1 / population:
        warnings.warn(
            f"privacy.target_delta={delta} is larger than 1 / {what} (1/{population} = {1 / population:.3g}), "
            "so the guarantee is weak: a mechanism that publishes one record in the clear meets it; "
            f"use a delta well below 1/{population}.",
            FedsimWarning,
            stacklevel=3,
        )
