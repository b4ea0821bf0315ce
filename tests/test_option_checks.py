"""The dataset, partitioner, model, engine and attack options: each YAML against its target, and the values targets reject.

Each option states its settings and defaults once, in conf/GROUP/NAME.yaml; the target's
signature says which settings exist and of what type, and the target checks the values,
with one sentence naming the setting as the user writes it.
"""

import inspect

import pytest
from hydra.utils import get_object

from fedsim.config.checks import ConfigError
from fedsim.config.options import check_option
from fedsim.instantiate import build
from tests.option_files import option_names, option_node

# The parameters fedsim passes when it builds an option of the group: never settings.
RUNTIME = {
    "dataset": (),
    "partitioner": (),
    "model": ("input_shape", "num_classes"),
    "engine": (),
    "attack": (),
}
OPTIONS = [(group, name) for group in RUNTIME for name in option_names(group)]
# A shape and class count each model fits, for building it with a bad setting.
MODEL_INPUTS = {
    "logreg": ((1, 8, 8), 10),
    "mlp": ((1, 8, 8), 10),
    "cnn": ((1, 28, 28), 10),
    "cnn1d": ((40,), 10),
    "lenet5": ((1, 28, 28), 10),
    "lstm": ((80,), 80),
    "resnet18": ((3, 32, 32), 10),
    "kws_cnn": ((1, 40, 98), 12),
}


def settings_of(node) -> list[str]:
    """The settings a YAML option states (everything but ``_target_`` and other ``_x_`` keys)."""
    return [key for key in node if not (key.startswith("_") and key.endswith("_"))]


def test_every_group_ships_its_options():
    assert option_names("dataset") == [
        "cifar10", "digits", "fashion_mnist", "femnist", "huggingface", "keywords", "mnist", "mnist1d", "shakespeare",
        "speech_commands", "synthetic",
    ]
    assert option_names("partitioner") == ["dirichlet", "iid", "natural", "pathological", "quantity_skew", "shards"]
    assert option_names("model") == ["cnn", "cnn1d", "kws_cnn", "lenet5", "logreg", "lstm", "mlp", "resnet18"]
    assert option_names("engine") == ["deployment", "local", "ray"]
    assert option_names("attack") == [
        "alie", "backdoor", "gaussian", "ipm", "label_flip", "none", "scaling", "sign_flip",
    ]


# --- every YAML against its target's signature ------------------------------------------------


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_the_yaml_names_a_target_and_no_schema(group, name):
    node = option_node(group, name)
    assert "defaults" not in node, f"{group}/{name}.yaml still composes a structured schema"
    assert str(node._target_).startswith("fedsim."), f"{group}/{name}.yaml names a target fedsim does not own"


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_yaml_passes_check_option(group, name):
    check_option(group, option_node(group, name), runtime=RUNTIME[group])


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_defaults_are_stated_once_in_the_yaml(group, name):
    node = option_node(group, name)
    parameters = inspect.signature(get_object(node._target_)).parameters
    stated = settings_of(node)
    defaulted = [key for key in stated if parameters[key].default is not inspect.Parameter.empty]
    assert defaulted == [], f"{node._target_} also has a default for {defaulted}"
    # and every setting the target needs is stated, so the YAML alone builds it
    needed = [
        key
        for key, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and key not in RUNTIME[group]
    ]
    assert sorted(set(needed) - set(stated)) == []


def test_a_runtime_parameter_in_a_model_yaml_is_rejected():
    node = option_node("model", "mlp")
    node.num_classes = 10
    with pytest.raises(ConfigError, match=r"^model\.num_classes is set by fedsim at run time"):
        check_option("model", node, runtime=RUNTIME["model"])


# --- each target rejects each bad value with one sentence -------------------------------------


def build_with(group: str, name: str, **settings):
    """Build conf/GROUP/NAME.yaml with some settings replaced, as a run builds it."""
    node = option_node(group, name)
    for key, value in settings.items():
        node[key] = value
    runtime = {}
    if group == "model":
        input_shape, num_classes = MODEL_INPUTS[name]
        runtime = {"input_shape": input_shape, "num_classes": num_classes}
    return build(node, **runtime)


BAD_VALUES = [
    # dataset
    ("dataset", "digits", {"test_fraction": 0}, "dataset.test_fraction must be strictly between 0 and 1 (got 0)."),
    ("dataset", "digits", {"test_fraction": 1.5}, "dataset.test_fraction must be strictly between 0 and 1 (got 1.5)."),
    ("dataset", "synthetic", {"alpha": -0.5}, "dataset.alpha must be at least 0 (got -0.5)."),
    ("dataset", "synthetic", {"beta": -1.0}, "dataset.beta must be at least 0 (got -1.0)."),
    ("dataset", "synthetic", {"num_users": 0}, "dataset.num_users must be at least 1 (got 0)."),
    ("dataset", "synthetic", {"test_fraction": 1.0},
     "dataset.test_fraction must be strictly between 0 and 1 (got 1.0)."),
    ("dataset", "huggingface", {"test_fraction": 0.0},
     "dataset.test_fraction must be strictly between 0 and 1 (got 0.0)."),
    ("dataset", "huggingface", {"mean": [0.5]},
     "dataset.mean and dataset.std go together: set both (one value per channel) or neither."),
    ("dataset", "mnist", {"std": [0.5]},
     "dataset.mean and dataset.std go together: set both (one value per channel) or neither."),
    ("dataset", "huggingface", {"mean": [0.1, 0.2], "std": [0.3]},
     "dataset.mean and dataset.std must have the same number of values (got 2 and 1)."),
    ("dataset", "huggingface", {"mean": [], "std": []},
     "dataset.mean and dataset.std must have the same number of values (got 0 and 0)."),
    ("dataset", "cifar10", {"std": [0.25, 0.0, 0.25]},
     "dataset.std values must be greater than 0 (got [0.25, 0.0, 0.25])."),
    ("dataset", "femnist", {"test_fraction": 1}, "dataset.test_fraction must be strictly between 0 and 1 (got 1)."),
    ("dataset", "fashion_mnist", {"mean": [0.286]},
     "dataset.mean and dataset.std go together: set both (one value per channel) or neither."),
    ("dataset", "fashion_mnist", {"mean": [0.286], "std": [-0.353]},
     "dataset.std values must be greater than 0 (got [-0.353])."),
    ("dataset", "mnist1d", {"num_samples": 19}, "dataset.num_samples must be at least 20, two per class (got 19)."),
    ("dataset", "mnist1d", {"test_fraction": 0}, "dataset.test_fraction must be strictly between 0 and 1 (got 0)."),
    ("dataset", "shakespeare", {"sequence_length": 0}, "dataset.sequence_length must be at least 1 (got 0)."),
    ("dataset", "shakespeare", {"test_fraction": -0.1},
     "dataset.test_fraction must be strictly between 0 and 1 (got -0.1)."),
    ("dataset", "shakespeare", {"min_examples_per_role": 1},
     "dataset.min_examples_per_role must be at least 2 (got 1)."),
    ("dataset", "shakespeare", {"max_examples_per_role": 50},
     "dataset.max_examples_per_role must be null or at least dataset.min_examples_per_role=100 (got 50)."),
    # (the keywords' other checks, espeak-ng's voices included, are in tests/data/test_keywords.py)
    ("dataset", "keywords", {"num_speakers": 0}, "dataset.num_speakers must be at least 1 (got 0)."),
    ("dataset", "speech_commands", {"keywords": ["yes", "no", "nein"]},
     "dataset.keywords: 'nein' is not a word of Speech Commands; the words are yes, no, up, down, left, right, on, "
     "off, stop, go, zero, one, two, three, four, five, six, seven, eight, nine, bed, bird, cat, dog, happy, house, "
     "marvin, sheila, tree, wow, backward, forward, follow, learn, visual."),
    # partitioner
    ("partitioner", "iid", {"num_partitions": 0}, "partitioner.num_partitions must be at least 1 (got 0)."),
    ("partitioner", "dirichlet", {"num_partitions": 0}, "partitioner.num_partitions must be at least 1 (got 0)."),
    ("partitioner", "dirichlet", {"alpha": 0}, "partitioner.alpha must be greater than 0 (got 0)."),
    ("partitioner", "dirichlet", {"alpha": -0.5}, "partitioner.alpha must be greater than 0 (got -0.5)."),
    ("partitioner", "dirichlet", {"min_partition_size": -1},
     "partitioner.min_partition_size must be at least 0 (got -1)."),
    ("partitioner", "pathological", {"num_partitions": -3}, "partitioner.num_partitions must be at least 1 (got -3)."),
    ("partitioner", "pathological", {"num_classes_per_partition": 0},
     "partitioner.num_classes_per_partition must be at least 1 (got 0)."),
    ("partitioner", "pathological", {"class_assignment_mode": "sorted"},
     "partitioner.class_assignment_mode must be one of random, deterministic, first-deterministic (got 'sorted')."),
    ("partitioner", "shards", {"num_partitions": 0}, "partitioner.num_partitions must be at least 1 (got 0)."),
    ("partitioner", "shards", {"num_shards_per_partition": 0},
     "partitioner.num_shards_per_partition must be at least 1 (got 0)."),
    ("partitioner", "quantity_skew", {"num_partitions": 0}, "partitioner.num_partitions must be at least 1 (got 0)."),
    ("partitioner", "quantity_skew", {"beta": 0.0}, "partitioner.beta must be greater than 0 (got 0.0)."),
    ("partitioner", "quantity_skew", {"min_partition_size": -2},
     "partitioner.min_partition_size must be at least 0 (got -2)."),
    ("partitioner", "natural", {},
     "partitioner.partition_by must name a column (null stands for the dataset's natural id column, "
     "which fedsim puts in its place before building the partitioner)."),
    # model
    ("model", "mlp", {"hidden_sizes": [200, 0]}, "model.hidden_sizes values must be at least 1 (got [200, 0])."),
    ("model", "cnn", {"channels": [32, 0]}, "model.channels values must be at least 1 (got [32, 0])."),
    ("model", "cnn", {"hidden_size": 0}, "model.hidden_size must be at least 1 (got 0)."),
    ("model", "cnn1d", {"channels": [25, -1, 25]}, "model.channels values must be at least 1 (got [25, -1, 25])."),
    ("model", "cnn1d", {"kernel_sizes": [5, 0, 3]}, "model.kernel_sizes values must be at least 1 (got [5, 0, 3])."),
    ("model", "cnn1d", {"kernel_sizes": [5, 3]},
     "model.kernel_sizes must give one kernel size per convolution of model.channels (3), not 2."),
    ("model", "lstm", {"embedding_size": 0}, "model.embedding_size must be at least 1 (got 0)."),
    ("model", "lstm", {"hidden_size": -1}, "model.hidden_size must be at least 1 (got -1)."),
    ("model", "lstm", {"num_layers": 0}, "model.num_layers must be at least 1 (got 0)."),
    ("model", "resnet18", {"num_groups": 0}, "model.num_groups must be at least 1 (got 0)."),
    ("model", "resnet18", {"num_groups": 3}, "model.num_groups=3 must divide every stage's width [64, 128, 256, 512]."),
    ("model", "kws_cnn", {"channels": [16]}, "model.channels must give at least two widths, each at least 1 (got [16])."),
    ("model", "kws_cnn", {"width_multiplier": 0.0}, "model.width_multiplier must be greater than 0 (got 0.0)."),
    ("model", "kws_cnn", {"width_multiplier": 0.05},
     "model.width_multiplier=0.05 makes a width of model.channels=[16, 24, 32, 48] zero; raise it or widen the channels."),
    ("model", "kws_cnn", {"dropout": 1.0}, "model.dropout must be in [0, 1) (got 1.0)."),
    # engine
    ("engine", "deployment", {"isolation": "thread"}, "engine.isolation must be process or subprocess (got 'thread')."),
    ("engine", "local", {"workers": -1},
     "engine.workers must be at least 0, where 0 runs the clients in this process (got -1)."),
    ("engine", "ray", {"client_resources": {"num_cpus": 0, "num_gpus": 0.0}},
     "engine.client_resources.num_cpus must be greater than 0 (got 0)."),
    ("engine", "ray", {"client_resources": {"num_cpus": "two", "num_gpus": 0.0}},
     "engine.client_resources.num_cpus must be greater than 0 (got 'two')."),
    ("engine", "ray", {"client_resources": {"num_cpus": 1.0, "num_gpus": -0.5}},
     "engine.client_resources.num_gpus must be at least 0 (got -0.5)."),
    ("engine", "ray", {"client_resources": {"num_cpus": 1.0}},
     "engine.client_resources must set exactly num_cpus and num_gpus (got ['num_cpus'])."),
    # attack (the checks that need the data, a backdoor's image size and classes, are in test_attacks.py)
    ("attack", "sign_flip", {"fraction": 1.0}, "attack.fraction must be in [0, 1) (got 1.0)."),
    ("attack", "sign_flip", {"fraction": -0.1}, "attack.fraction must be in [0, 1) (got -0.1)."),
    ("attack", "gaussian", {"std": 0.0}, "attack.std must be greater than 0 and finite (got 0.0)."),
    ("attack", "gaussian", {"fraction": 1.5}, "attack.fraction must be in [0, 1) (got 1.5)."),
    ("attack", "scaling", {"factor": -2.0}, "attack.factor must be greater than 0 and finite (got -2.0)."),
    ("attack", "label_flip", {"fraction": 1}, "attack.fraction must be in [0, 1) (got 1)."),
    ("attack", "alie", {"z": -0.5},
     "attack.z must be null (the paper's z from n and f) or a number at least 0 (got -0.5)."),
    ("attack", "ipm", {"epsilon": 0.0}, "attack.epsilon must be greater than 0 and finite (got 0.0)."),
    ("attack", "backdoor", {"target_class": -1}, "attack.target_class must be at least 0 (got -1)."),
    ("attack", "backdoor", {"poison_fraction": 0.0}, "attack.poison_fraction must be in (0, 1] (got 0.0)."),
    ("attack", "backdoor", {"trigger_size": 0}, "attack.trigger_size must be at least 1 (got 0)."),
    ("attack", "backdoor", {"boost": 0.0}, "attack.boost must be greater than 0 and finite (got 0.0)."),
]


@pytest.mark.parametrize(
    ("group", "name", "settings", "message"),
    BAD_VALUES,
    ids=[f"{group}/{name}:{','.join(settings) or 'as shipped'}" for group, name, settings, _ in BAD_VALUES],
)
def test_the_target_rejects_a_bad_value_in_one_sentence(group, name, settings, message):
    with pytest.raises(ConfigError) as raised:
        build_with(group, name, **settings)
    assert str(raised.value) == message


def test_every_checked_option_has_a_bad_value_case():
    # the options without a setting to get wrong: logreg and lenet5 (none), attack=none
    checked = {(group, name) for group, name, _, _ in BAD_VALUES}
    assert set(OPTIONS) - checked == {("model", "logreg"), ("model", "lenet5"), ("attack", "none")}


def test_the_model_check_is_not_reported_as_a_shape_mismatch():
    # build_model turns a model's ValueError into "does not fit the input shape"; a bad setting stays itself
    from fedsim.models import build_model

    node = option_node("model", "cnn")
    node.hidden_size = 0
    with pytest.raises(ConfigError) as raised:
        build_model(node, (1, 28, 28), 10, seed=0)
    assert str(raised.value) == "model.hidden_size must be at least 1 (got 0)."
