"""Differential privacy: Opacus DP-SGD on clients, Flower's central-DP wrappers, and the epsilon spent each round."""

from fedsim.privacy.plan import PrivacyPlan, plan_privacy, train_sizes

__all__ = ["PrivacyPlan", "plan_privacy", "train_sizes"]
