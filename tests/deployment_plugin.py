"""A model from outside fedsim's packages, for the SuperNodes' allow-list tests (test_deployment.py)."""

from fedsim.models import MLP


class PluginMLP(MLP):
    """fedsim's MLP under another package's name: a plug-in a SuperNode builds only where its operator allows it."""


CALLS: list[tuple] = []


def record_call(*args, **kwargs) -> None:
    """A callable from outside fedsim: a SuperNode that builds it records a call here."""
    CALLS.append((args, kwargs))
