"""The optimizer, lr_schedule, strategy, privacy and callbacks options: each YAML against its target's signature, defaults stated once.

(The dataset, partitioner, model and engine options are checked in test_option_checks.py.)
"""

import inspect

import pytest
from hydra.utils import get_object

from fedsim.config.options import check_option
from fedsim.plan import RUNTIME
from tests.option_files import option_names, option_node

GROUPS = ("optimizer", "lr_schedule", "strategy", "privacy", "callbacks")
OPTIONS = [(group, name) for group in GROUPS for name in option_names(group)]


def node_of(group: str, name: str):
    node = option_node(group, name, client={"lr": 0.05})  # qfedavg's client_learning_rate follows client.lr
    return node[name] if group == "callbacks" else node  # a callback option sits under its own name


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_yaml_passes_check_option(group, name):
    check_option(f"{group}.{name}" if group == "callbacks" else group, node_of(group, name), RUNTIME.get(group, ()))


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_defaults_are_stated_once_in_the_yaml(group, name):
    node = node_of(group, name)
    target = get_object(node._target_)
    if not target.__module__.startswith(("fedsim.", "strategies.")):
        pytest.skip(f"{node._target_} is Flower's: its own defaults are Flower's, the YAML states fedsim's")
    parameters = inspect.signature(target).parameters
    stated = [key for key in node if not key.startswith("_")]
    defaulted = [key for key in stated if parameters[key].default is not inspect.Parameter.empty]
    assert defaulted == [], f"{node._target_} also has a default for {defaulted}"
