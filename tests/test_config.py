"""Every option of every config group composes, validates and instantiates."""

from importlib import resources

import pytest
from flwr.serverapp.strategy import Strategy
from omegaconf import OmegaConf

from fedsim.apps import build_strategy, load_federation
from fedsim.config import ConfigError, validate
from fedsim.data import FederatedData
from fedsim.instantiate import build
from fedsim.models import build_model
from tests.conftest import compose_config
from tests.data.hub_schemas import write_cifar10_parquet, write_femnist_parquet

GROUPS = ["dataset", "partitioner", "model", "strategy", "privacy", "engine", "logger"]

# Options that need companions to make sense; everything else composes with the defaults.
COMPANIONS = {
    ("partitioner", "natural"): ["dataset=synthetic", "dataset.num_users=5"],
    ("dataset", "synthetic"): ["model=logreg"],
    ("dataset", "mnist1d"): ["dataset.num_samples=500"],
    ("dataset", "shakespeare"): ["model=lstm", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=200"],
    ("dataset", "cifar10"): ["partitioner=iid", "model=resnet18"],
    ("dataset", "femnist"): ["partitioner=natural", "num_clients=6"],
    ("model", "cnn1d"): ["dataset=mnist1d", "dataset.num_samples=500"],
    ("model", "lstm"): ["dataset=shakespeare", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=200"],
}

# Hub options read local parquet files with the hub dataset's schema: tests download nothing.
LOCAL_HUB_FILES = {
    "huggingface": None,  # the digits_parquet fixture (ylecun/mnist's schema)
    "mnist": None,
    "cifar10": write_cifar10_parquet,
    "femnist": write_femnist_parquet,
}


def all_options() -> list[tuple[str, str]]:
    conf = resources.files("fedsim.conf")
    return [
        (group, entry.name.removesuffix(".yaml"))
        for group in GROUPS
        for entry in sorted(conf.joinpath(group).iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]


def test_every_group_has_options():
    found = {group for group, _ in all_options()}
    assert found == set(GROUPS)
    assert ("strategy", "fedadam") in all_options()


@pytest.mark.parametrize(("group", "option"), all_options(), ids=lambda v: v)
def test_option_composes_validates_and_instantiates(group, option, digits_parquet, tmp_path):
    overrides = [f"{group}={option}", *COMPANIONS.get((group, option), [])]
    if group == "dataset" and option in LOCAL_HUB_FILES:
        write = LOCAL_HUB_FILES[option]
        files = digits_parquet if write is None else write(tmp_path)
        overrides += ["dataset.path=parquet", f"dataset.data_files={files}".replace("'", "")]
    cfg = compose_config(*overrides)
    validate(cfg)

    federation = load_federation(cfg)
    assert isinstance(federation.data, FederatedData)
    assert federation.num_clients == cfg.num_clients
    model = build_model(cfg.model, federation.data.input_shape, federation.data.num_classes, cfg.seed)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert isinstance(build_strategy(cfg), Strategy)
    assert callable(build(cfg.engine).run)
    build(cfg.logger, run_dir=tmp_path).close()
    assert cfg.privacy.mechanism == (option if group == "privacy" else "none")


def test_schema_rejects_a_value_of_the_wrong_type():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_config("partitioner.alpha=abc")


def test_interpolations_follow_the_top_level_keys():
    cfg = compose_config("num_clients=7", "seed=4")
    assert cfg.partitioner.num_partitions == 7
    assert cfg.partitioner.seed == 4 and cfg.dataset.seed == 4
    assert cfg.clients_per_round == 7 and cfg.eval_clients_per_round == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["partitioner.alpha=0"], "partitioner.alpha must be greater than 0"),
        (["clients_per_round=6"], "clients_per_round must be between 1 and num_clients=5"),
        (["clients_per_round=0"], "clients_per_round must be between 1"),
        (["eval_clients_per_round=6"], "eval_clients_per_round must be between 0 and num_clients=5"),
        (["num_rounds=0"], "num_rounds must be at least 1"),
        (["num_clients=0", "clients_per_round=1"], "num_clients must be at least 1"),
        (["client.lr=0"], "client.lr must be greater than 0"),
        (["stragglers=1.5"], "stragglers must be a fraction in [0, 1]"),
        (["client.batch_size=0"], "client.batch_size must be at least 1"),
        (["client.local_epochs=0"], "client.local_epochs must be at least 1"),
        (["client.eval_fraction=1.0"], "client.eval_fraction must be strictly between 0 and 1"),
        (["dataset.test_fraction=0"], "dataset.test_fraction must be strictly between 0 and 1"),
        (["partitioner=quantity_skew", "partitioner.beta=0"], "partitioner.beta must be greater than 0"),
        (["partitioner=pathological", "partitioner.num_classes_per_partition=0"],
         "partitioner.num_classes_per_partition must be at least 1"),
        (["strategy=fedadam", "strategy.eta=0"], "strategy.eta must be greater than 0"),
        (["strategy=fedadam", "strategy.beta_1=1.0"], "strategy.beta_1 must be in [0, 1)"),
        (["strategy=fedavgm", "strategy.server_momentum=-0.1"], "strategy.server_momentum must be in [0, 1)"),
        (["engine=ray", "engine.client_resources.num_cpus=0"], "engine.client_resources.num_cpus must be greater than 0"),
        (["strategy=fedprox", "strategy.proximal_mu=-1"], "strategy.proximal_mu must be at least 0"),
        (["strategy=fedtrimmedavg", "strategy.beta=0.5"], "strategy.beta (the trimmed fraction) must be in [0, 0.5)"),
        (["strategy=krum", "strategy.num_malicious_nodes=2"],
         "strategy.num_malicious_nodes=2 needs clients_per_round >= 2 * num_malicious_nodes + 3 (Blanchard et al. 2017) = 7 (got 5)"),
        (["strategy=bulyan", "strategy.num_malicious_nodes=1"],
         "strategy.num_malicious_nodes=1 needs clients_per_round >= 4 * num_malicious_nodes + 3 (El Mhamdi et al. 2018) = 7 (got 5)"),
        (["strategy=multikrum", "strategy.num_nodes_to_select=6"],
         "strategy.num_nodes_to_select must be between 1 and clients_per_round - num_malicious_nodes = 5"),
        (["strategy=qfedavg", "strategy.client_learning_rate=0"], "strategy.client_learning_rate must be greater than 0"),
        (["strategy=fedavgm", "strategy.server_learning_rate=0"], "strategy.server_learning_rate must be greater than 0"),
    ],
)
def test_out_of_range_values_fail_with_one_sentence(overrides, message):
    cfg = compose_config(*overrides)
    with pytest.raises(ConfigError) as raised:
        validate(cfg)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text and text.endswith(".")


def test_the_embedded_default_is_the_documented_one():
    cfg = compose_config(tiny=False)
    choices = {group: cfg[group].get("_target_", "") for group in ("dataset", "partitioner", "model", "strategy")}
    assert choices == {
        "dataset": "fedsim.data.load_digits",
        "partitioner": "flwr_datasets.partitioner.DirichletPartitioner",
        "model": "fedsim.models.MLP",
        "strategy": "flwr.serverapp.strategy.FedAvg",
    }
    assert (cfg.num_clients, cfg.clients_per_round, cfg.num_rounds) == (20, 20, 20)
    assert cfg.partitioner.alpha == 0.5
    assert OmegaConf.to_container(cfg.model)["hidden_sizes"] == [200, 200]
