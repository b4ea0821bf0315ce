"""Private runs end to end: epsilon every round, budgets kept, utility at the extremes, bad input."""

import pytest

from fedsim.config import ConfigError
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.plan import build_plan, check_options, load_federation
from fedsim.privacy.local import batches_per_epoch, train_sizes
from fedsim.results import load, round_table
from fedsim.runner import run
from tests.conftest import compose_config
from tests.privacy.reference import reference_epsilon

SMALL = ["model=logreg", "partitioner=iid", "eval_clients_per_round=0"]


def private_run(tmp_path, *overrides):
    cfg = compose_config(*SMALL, *overrides)
    summary = run(cfg, tmp_path, quiet=True)
    return cfg, load(summary.run_dir)


def client_epsilons(frame):
    rows = frame[(frame.stage == "train") & (frame.metric == "epsilon") & frame.client.notna()]
    return rows.pivot_table(index="round", columns="client", values="value")


def test_local_dp_epsilon_is_cumulative_monotone_and_matches_dp_accounting(tmp_path):
    cfg, frame = private_run(tmp_path, "privacy=local_dp", "num_rounds=3", "clients_per_round=3")
    table = round_table(frame).dropna(subset=["train_epsilon"])  # round 0 is the initial model
    assert list(table.index) == [1, 2, 3]
    assert table["train_epsilon"].is_monotonic_increasing and table["train_epsilon"].iloc[0] > 0
    clients = client_epsilons(frame)
    # A client that sat a round out keeps its epsilon: max and mean over every client so far.
    remembered = clients.ffill()
    assert table["train_epsilon"].tolist() == pytest.approx(remembered.max(axis=1).tolist())
    assert table["train_epsilon_mean"].tolist() == pytest.approx(remembered.mean(axis=1).tolist())
    sizes = train_sizes(load_federation(cfg))
    for client in clients.columns:
        rounds = int(clients[client].notna().sum())
        k = batches_per_epoch(sizes[int(client)], cfg.client.batch_size)
        expected = reference_epsilon([(1.0, 1 / k, rounds * k)], cfg.privacy.target_delta, "rdp")
        assert clients[client].dropna().iloc[-1] == pytest.approx(expected, rel=0.01)


def test_train_sizes_are_the_clients_training_examples():
    federation = load_federation(compose_config(*SMALL))
    assert train_sizes(federation) == [len(federation.client(i).train_y) for i in range(federation.num_clients)]


def test_a_target_epsilon_is_kept_and_mostly_spent(tmp_path):
    _, frame = private_run(
        tmp_path, "privacy=local_dp", "privacy.noise_multiplier=null", "privacy.target_epsilon=3", "num_rounds=2"
    )
    spent = round_table(frame)["train_epsilon"].iloc[-1]
    assert 0.8 * 3 < spent <= 3


def test_very_large_noise_leaves_accuracy_near_chance(tmp_path):
    _, frame = private_run(tmp_path, "privacy=local_dp", "privacy.noise_multiplier=1000", "client.lr=1")
    assert round_table(frame)["centralized_accuracy"].iloc[-1] < 0.25  # 10 classes


@pytest.mark.parametrize("side", ["server", "client"])
def test_central_dp_epsilon_per_round_matches_dp_accounting(tmp_path, side):
    cfg, frame = private_run(
        tmp_path / side, "privacy=central_dp", f"privacy.side={side}", "num_rounds=3", "clients_per_round=2",
        "strategy.weighting=uniform"
    )
    table = round_table(frame)
    expected = [reference_epsilon([(1.0, 2 / 5, r)], 1e-5, "rdp") for r in (1, 2, 3)]
    assert table["train_epsilon"].dropna().tolist() == pytest.approx(expected, rel=0.01)


def test_client_side_clipping_gives_the_server_side_result(tmp_path):
    accuracies = {}
    for side in ("server", "client"):
        _, frame = private_run(
            tmp_path / side, "privacy=central_dp", f"privacy.side={side}", "privacy.clipping_norm=0.05", "strategy.weighting=uniform"
        )
        accuracies[side] = round_table(frame)["centralized_accuracy"].tolist()
        clipped = frame[(frame.metric == "norm_bit") & frame.client.notna()]
        assert (clipped.value == 1).all() and len(clipped) == (10 if side == "client" else 0)
    assert accuracies["server"] == pytest.approx(accuracies["client"], abs=1e-9)


@pytest.mark.parametrize("side", ["server", "client"])
def test_adaptive_clipping_runs_and_accounts(tmp_path, side):
    _, frame = private_run(
        tmp_path, "privacy=central_dp_adaptive", f"privacy.side={side}", "privacy.noise_multiplier=0.4", "strategy.weighting=uniform"
    )
    expected = [reference_epsilon([(0.4, 1.0, r)], 1e-5, "rdp") for r in (1, 2)]
    assert round_table(frame)["train_epsilon"].dropna().tolist() == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["privacy=local_dp", "privacy.noise_multiplier=null", "privacy.target_epsilon=0"],
         "privacy.target_epsilon must be greater than 0"),
        (["privacy=local_dp", "privacy.target_delta=1"], "privacy.target_delta must be strictly between 0 and 1"),
        (["privacy=central_dp", "privacy.target_delta=0"], "privacy.target_delta must be strictly between 0 and 1"),
        (["privacy=local_dp", "privacy.noise_multiplier=-1"], "privacy.noise_multiplier must be at least 0"),
        (["privacy=local_dp", "privacy.max_grad_norm=0"], "privacy.max_grad_norm must be greater than 0"),
        (["privacy=central_dp", "privacy.clipping_norm=-1"], "privacy.clipping_norm must be greater than 0"),
        (["privacy=local_dp", "privacy.target_epsilon=2"], "give exactly one of privacy.noise_multiplier"),
        (["privacy=local_dp", "privacy.accountant=gdp"], "privacy.accountant must be one of rdp, prv"),
        (["privacy=central_dp", "privacy.side=both"], "privacy.side must be one of server, client"),
        (["privacy=central_dp"], "so it needs strategy.weighting=uniform: with examples weighting a client"),
        (["privacy=central_dp_adaptive", "strategy=scaffold"], "so it needs strategy.weighting=uniform"),
    ],
)
def test_bad_values_are_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match=message) as raised:
        build_plan(compose_config(*overrides))
    assert "\n" not in str(raised.value) and str(raised.value).endswith(".")


def plan(*overrides):
    """The privacy mechanism of ``fedsim OVERRIDES`` (small), prepared as a run prepares it: its noise settled."""
    cfg = compose_config(*SMALL, *overrides)
    settings = check_options(cfg)
    federation = load_federation(cfg)
    model = build_model(cfg.model, federation.data.input_shape, federation.data.num_classes, cfg.seed)
    mechanism = build(cfg.privacy)
    mechanism.prepare(settings, federation, model)
    return mechanism


def test_an_unreachable_target_epsilon_stops_the_run_before_training():
    with pytest.raises(ConfigError, match=r"privacy.target_epsilon=0.1 cannot be reached in \d+ steps"):
        plan("privacy=local_dp", "privacy.noise_multiplier=null", "privacy.target_epsilon=0.1")


def test_a_delta_above_one_over_the_smallest_client_dataset_warns():
    with pytest.warns(UserWarning, match=r"privacy.target_delta=0.1 is larger than 1 / the smallest client dataset"):
        plan("privacy=local_dp", "privacy.target_delta=0.1")


def test_adaptive_clipping_with_too_much_noise_for_the_count_is_refused():
    with pytest.raises(ConfigError, match=r"needs a noise multiplier below 2 \* privacy.clipped_count_stddev = 0.5"):
        plan("privacy=central_dp_adaptive", "strategy.weighting=uniform")


def test_secure_mode_without_torchcsprng_is_one_sentence():
    import importlib.util

    if importlib.util.find_spec("torchcsprng") is not None:
        pytest.skip("torchcsprng is installed")
    with pytest.raises(ConfigError, match="privacy.secure_mode=true needs the torchcsprng package"):
        build_plan(compose_config("privacy=local_dp", "privacy.secure_mode=true"))
