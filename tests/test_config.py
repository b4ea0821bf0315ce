"""Every option of every config group composes, checks and instantiates; mistakes are one sentence."""

from importlib import resources

import pytest
from flwr.serverapp.strategy import Strategy
from hydra.utils import get_object
from omegaconf import OmegaConf

from fedsim import config as fedsim_config
from fedsim.callbacks import Callback, Fairness, MetricsCSV, Progress, RunInfo, TensorBoard
from fedsim.config import ConfigError
from fedsim.data import FederatedData
from fedsim.plan import build_plan, check_options
from fedsim.privacy import CentralDP, CentralDPAdaptive, LocalDP, NoPrivacy
from tests.conftest import compose_config
from tests.data.hub_schemas import write_cifar10_parquet, write_femnist_parquet, write_speech_commands_parquet

GROUPS = [
    "dataset", "partitioner", "model", "optimizer", "lr_schedule", "strategy", "privacy", "attack", "engine", "callbacks",
]

# Options that need companions to make sense; everything else composes with the defaults.
COMPANIONS = {
    ("partitioner", "natural"): ["dataset=synthetic", "dataset.num_users=5"],
    ("dataset", "synthetic"): ["model=logreg"],
    ("dataset", "mnist1d"): ["dataset.num_samples=500"],
    ("dataset", "shakespeare"): ["model=lstm", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=200"],
    ("dataset", "cifar10"): ["partitioner=iid", "model=resnet18"],
    ("dataset", "femnist"): ["partitioner=natural", "num_clients=6"],
    # a few clips in a second of espeak-ng (cached in the datasets cache after the first run)
    ("dataset", "keywords"): ["partitioner=natural", "num_clients=3", "dataset.num_speakers=3",
                              "dataset.num_test_speakers=1", "dataset.repetitions=2", "dataset.keywords=[yes,no]"],
    ("dataset", "speech_commands"): ["partitioner=natural", "num_clients=2"],
    ("model", "kws_cnn"): ["dataset=keywords", "partitioner=natural", "num_clients=3", "dataset.num_speakers=3",
                           "dataset.num_test_speakers=1", "dataset.repetitions=2", "dataset.keywords=[yes,no]"],
    ("model", "cnn1d"): ["dataset=mnist1d", "dataset.num_samples=500"],
    ("model", "lenet5"): ["dataset=fashion_mnist"],
    ("model", "lstm"): ["dataset=shakespeare", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=200"],
    # the shipped noise (1.0) must stay below 2 * clients_per_round / 20, the clipped count's
    # default noise: more than the tiny federation's 5 clients per round allow (tests/privacy/test_runs.py)
    ("privacy", "central_dp_adaptive"): ["privacy.noise_multiplier=0.4", "strategy.weighting=uniform"],
    ("privacy", "central_dp"): ["strategy.weighting=uniform"],
}

# Hub options read local parquet files with the hub dataset's schema: tests download nothing.
LOCAL_HUB_FILES = {
    "huggingface": None,  # the digits_parquet fixture (ylecun/mnist's schema)
    "mnist": None,
    "cifar10": write_cifar10_parquet,
    "femnist": write_femnist_parquet,
    "speech_commands": write_speech_commands_parquet,
}

# The mechanism each privacy option builds; the other groups' runs have none.
MECHANISMS = {"none": NoPrivacy, "local_dp": LocalDP, "central_dp": CentralDP, "central_dp_adaptive": CentralDPAdaptive}
# The callback each of these options builds (other callbacks options build the Callback they name).
CALLBACKS = {"progress": Progress, "metrics_csv": MetricsCSV, "fairness": Fairness, "tensorboard": TensorBoard}
DEFAULT_CALLBACKS = ["progress", "metrics_csv", "fairness"]


def all_options() -> list[tuple[str, str]]:
    conf = resources.files("fedsim.conf")
    return [
        (group, entry.name.removesuffix(".yaml"))
        for group in GROUPS
        for entry in sorted(conf.joinpath(group).iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]


def test_every_group_has_options():
    assert list(fedsim_config.GROUPS) == GROUPS
    found = {group for group, _ in all_options()}
    assert found == set(GROUPS)
    assert ("strategy", "fedadam") in all_options()
    assert {option for group, option in all_options() if group == "callbacks"} >= set(CALLBACKS)


@pytest.mark.parametrize(("group", "option"), all_options(), ids=lambda v: v)
def test_option_composes_checks_and_instantiates(group, option, digits_parquet, tmp_path):
    choice = f"+callbacks={option}" if group == "callbacks" else f"{group}={option}"
    overrides = [choice, *COMPANIONS.get((group, option), [])]
    if group == "dataset" and option in LOCAL_HUB_FILES:
        write = LOCAL_HUB_FILES[option]
        files = digits_parquet if write is None else write(tmp_path)
        overrides += ["dataset.path=parquet", f"dataset.data_files={files}".replace("'", "")]
    cfg = compose_config(*overrides)
    settings = check_options(cfg)
    assert settings.num_clients == cfg.num_clients

    plan = build_plan(cfg)  # every check, every target built
    federation = plan.federation
    assert isinstance(federation.data, FederatedData)
    assert federation.num_clients == cfg.num_clients
    assert sum(p.numel() for p in plan.model.parameters()) > 0
    assert isinstance(plan.strategy, Strategy)
    assert callable(plan.engine.run)
    assert type(plan.privacy) is MECHANISMS[option if group == "privacy" else "none"]
    plan.privacy.wrap(plan.strategy, plan.settings, {})

    # +callbacks=NAME adds NAME to the default callbacks (choosing a default one again changes nothing)
    chosen = list(DEFAULT_CALLBACKS)
    if group == "callbacks" and option not in chosen:
        chosen.append(option)
    assert list(cfg.callbacks) == chosen
    built = dict(zip(chosen, map(type, plan.callbacks), strict=True))
    for name, callback_class in built.items():
        assert callback_class is CALLBACKS.get(name, get_object(cfg.callbacks[name]._target_))
        assert issubclass(callback_class, Callback)
    run = RunInfo(run_dir=tmp_path / "run", num_rounds=cfg.num_rounds, quiet=True)
    for callback in plan.callbacks:
        callback.on_run_start(run)
    for callback in plan.callbacks:
        callback.on_run_end(run, plan.history)
    assert (tmp_path / "run" / "metrics.csv").is_file()
    if option == "tensorboard":
        assert (tmp_path / "run" / "tensorboard").is_dir()


def test_the_top_level_schema_rejects_a_value_of_the_wrong_type():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_config("num_rounds=abc")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["partitioner.alpha=abc"], "partitioner.alpha must be a number (got 'abc')."),
        (["strategy=fedprox", "strategy.proximal_mu=abc"], "strategy.proximal_mu must be a number (got 'abc')."),
        (["model.hidden_sizes=[200,abc]"], "model.hidden_sizes must be a list of integers (got [200, 'abc'])."),
        (["engine.workers=1.5"], "engine.workers must be an integer (got 1.5)."),
        (["privacy=local_dp", "privacy.secure_mode=maybe"], "privacy.secure_mode must be a boolean (got 'maybe')."),
        (["+callbacks=tensorboard", "callbacks.tensorboard.log_dir=3"],
         "callbacks.tensorboard.log_dir must be a string (got 3)."),
    ],
)
def test_a_value_of_the_wrong_type_in_a_group_option_is_one_sentence(overrides, message):
    cfg = compose_config(*overrides)  # group options have no Hydra schema: composing succeeds
    with pytest.raises(ConfigError) as raised:
        check_options(cfg)
    assert str(raised.value) == message
    with pytest.raises(ConfigError) as planned:  # and the plan stops on it before building anything
        build_plan(cfg)
    assert str(planned.value) == message


def test_an_unknown_setting_is_one_sentence_naming_it_and_listing_the_valid_ones():
    cfg = compose_config("strategy=fedavg", "+strategy.proximal_mu=0.1")
    with pytest.raises(ConfigError) as raised:
        build_plan(cfg)
    text = str(raised.value)
    assert "\n" not in text and text.endswith(".")
    head, listed = text.removesuffix(".").split("; its settings are: ")
    assert head == "strategy.proximal_mu is not a setting of strategies.fedavg.FedAvg"
    # FedAvg's keywords less the ones fedsim passes at run time (fraction_train, weighted_by_key, ...)
    # and the two that take Python callables (train/evaluate_metrics_aggr_fn)
    assert listed == "weighting"


def test_a_setting_that_takes_a_python_object_is_refused():
    cfg = compose_config("strategy=fedavg", "+strategy.train_metrics_aggr_fn=mean")
    with pytest.raises(ConfigError) as raised:
        build_plan(cfg)
    assert str(raised.value) == (
        "strategy.train_metrics_aggr_fn takes a Python object (Callable or null), which a config cannot give."
    )


def test_a_setting_fedsim_passes_at_run_time_is_refused():
    cfg = compose_config("strategy=scaffold", "+strategy.num_clients=3")
    with pytest.raises(ConfigError) as raised:
        check_options(cfg)
    assert str(raised.value) == "strategy.num_clients is set by fedsim at run time; remove it from the config."


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
        (["client.eval_fraction=1.0"], "client.eval_fraction must be at least 0 and below 1"),
        (["client.eval_fraction=-0.1"], "client.eval_fraction must be at least 0 and below 1"),
        (["client.eval_fraction=0"], "client.eval_fraction=0 keeps no examples for federated evaluation"),
        (["strategy=scaffold", "strategy.weighting=size"], "strategy.weighting must be one of examples, uniform"),
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
        build_plan(cfg)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text and text.endswith(".")


def test_the_embedded_default_is_the_documented_one():
    cfg = compose_config(tiny=False)
    choices = {group: cfg[group].get("_target_", "") for group in ("dataset", "partitioner", "model", "strategy")}
    assert choices == {
        "dataset": "fedsim.data.load_digits",
        "partitioner": "fedsim.data.DirichletPartitioner",
        "model": "fedsim.models.MLP",
        "strategy": "strategies.fedavg.FedAvg",
    }
    assert cfg.privacy._target_ == "fedsim.privacy.NoPrivacy"
    # plain SGD at client.lr in every round, as fedsim's clients trained before the optimizer group
    assert OmegaConf.to_container(cfg.optimizer) == {
        "_target_": "fedsim.optimizers.SGD", "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0,
        "keep_state": False,
    }
    assert cfg.lr_schedule._target_ == "fedsim.lr_schedules.Constant" and cfg.client.lr == 0.05
    assert list(cfg.callbacks) == DEFAULT_CALLBACKS
    assert (cfg.num_clients, cfg.clients_per_round, cfg.num_rounds) == (20, 20, 20)
    assert cfg.partitioner.alpha == 0.5
    assert OmegaConf.to_container(cfg.model)["hidden_sizes"] == [200, 200]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+client.momentum=0.9",
         "client.momentum is not a fedsim setting; the client settings are: batch_size, eval_fraction, local_epochs, lr."),
        ("+checkpoint.at=3", "checkpoint.at is not a fedsim setting; the checkpoint settings are: every."),
        ("+foo=1", "foo is not a fedsim setting; the top-level settings are: centralized_train_metrics, checkpoint, "
                   "client, clients_per_round, device, drop_stragglers, eval_clients_per_round, faults, method, "
                   "num_clients, num_rounds, quiet, seed, stop_on_divergence, stragglers, verbose."),
    ],
)
def test_an_unknown_top_level_or_client_setting_is_refused_not_ignored(override, message):
    with pytest.raises(ConfigError) as raised:
        check_options(compose_config(override))
    assert str(raised.value) == message


@pytest.mark.parametrize("seed", ["-1", "9223372036854775808"])
def test_a_seed_outside_0_to_2_63_is_one_sentence(seed):
    with pytest.raises(ConfigError) as raised:
        check_options(compose_config(f"seed={seed}"))
    assert str(raised.value) == f"seed must be at least 0 and below 2**63 (got {seed})."
