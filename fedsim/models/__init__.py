"""Plain torch models; each takes the dataset's input shape and number of classes."""

from fedsim.models.classic import CNN, MLP, LogisticRegression
from fedsim.models.building import build_model

__all__ = ["CNN", "MLP", "LogisticRegression", "build_model"]
