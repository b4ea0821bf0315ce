"""Differential privacy: the ``privacy`` options (no privacy, Opacus DP-SGD on clients, Flower's central DP)."""

from fedsim.privacy.central import CentralDP, CentralDPAdaptive
from fedsim.privacy.local import LocalDP
from fedsim.privacy.mechanism import NoPrivacy, PrivacyMechanism

__all__ = ["CentralDP", "CentralDPAdaptive", "LocalDP", "NoPrivacy", "PrivacyMechanism"]
