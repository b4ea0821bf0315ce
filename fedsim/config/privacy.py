"""Schemas and value checks of the privacy options."""

import importlib.util
from dataclasses import dataclass

from omegaconf import DictConfig

from fedsim.config.checks import require

ACCOUNTANTS = ("rdp", "prv")
SIDES = ("server", "client")


@dataclass
class NoPrivacyConfig:
    mechanism: str = "none"


@dataclass
class LocalDPConfig:
    """Opacus DP-SGD on every client (example-level privacy)."""

    mechanism: str = "local_dp"
    noise_multiplier: float | None = 1.0
    target_epsilon: float | None = None
    target_delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    secure_mode: bool = False


@dataclass
class CentralDPConfig:
    """Flower's central DP with fixed clipping (client-level privacy)."""

    mechanism: str = "central_dp"
    side: str = "server"
    noise_multiplier: float | None = 1.0
    target_epsilon: float | None = None
    target_delta: float = 1e-5
    clipping_norm: float = 1.0
    accountant: str = "rdp"


@dataclass
class CentralDPAdaptiveConfig:
    """Flower's central DP with adaptive clipping (Andrew et al. 2021)."""

    mechanism: str = "central_dp_adaptive"
    side: str = "server"
    noise_multiplier: float | None = 1.0
    target_epsilon: float | None = None
    target_delta: float = 1e-5
    initial_clipping_norm: float = 0.1
    target_clipped_quantile: float = 0.5
    clip_norm_lr: float = 0.2
    clipped_count_stddev: float | None = None
    accountant: str = "rdp"


SCHEMAS: dict[str, type] = {
    "none": NoPrivacyConfig,
    "local_dp": LocalDPConfig,
    "central_dp": CentralDPConfig,
    "central_dp_adaptive": CentralDPAdaptiveConfig,
}


def validate(privacy: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the privacy option; what needs the data is checked in ``fedsim.privacy.plan``."""
    if privacy.mechanism == "none":
        return
    noise, target = privacy.noise_multiplier, privacy.target_epsilon
    require(
        (noise is None) != (target is None),
        "give exactly one of privacy.noise_multiplier and privacy.target_epsilon "
        f"(got {noise} and {target}; set privacy.noise_multiplier=null to aim at a target epsilon).",
    )
    if noise is not None:
        require(noise >= 0, f"privacy.noise_multiplier must be at least 0 (got {noise}).")
    if target is not None:
        require(target > 0, f"privacy.target_epsilon must be greater than 0 (got {target}).")
    delta = privacy.target_delta
    require(0 < delta < 1, f"privacy.target_delta must be strictly between 0 and 1 (got {delta}).")
    require(
        privacy.accountant in ACCOUNTANTS,
        f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)} (got {privacy.accountant}).",
    )
    for key in ("max_grad_norm", "clipping_norm", "initial_clipping_norm", "clip_norm_lr"):
        if key in privacy:
            require(privacy[key] > 0, f"privacy.{key} must be greater than 0 (got {privacy[key]}).")
    if "side" in privacy:
        require(privacy.side in SIDES, f"privacy.side must be one of {', '.join(SIDES)} (got {privacy.side}).")
    if "target_clipped_quantile" in privacy:
        quantile = privacy.target_clipped_quantile
        require(0 <= quantile <= 1, f"privacy.target_clipped_quantile must be in [0, 1] (got {quantile}).")
    if privacy.get("clipped_count_stddev") is not None:
        stddev = privacy.clipped_count_stddev
        require(stddev >= 0, f"privacy.clipped_count_stddev must be at least 0 (got {stddev}).")
    if privacy.get("secure_mode"):
        require(
            importlib.util.find_spec("torchcsprng") is not None,
            "privacy.secure_mode=true needs the torchcsprng package (pip install torchcsprng), "
            "Opacus's cryptographically secure generator.",
        )
