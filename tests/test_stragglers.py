"""FedProx-style stragglers: seeded, strategy-independent, dropped or kept."""

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedProx

from fedsim.flower_internals import set_task_identity
from fedsim.results import load
from fedsim.runner import run
from fedsim.sampling import NodeSubsetGrid, sample_partitions
from fedsim.stragglers import Stragglers, draw_stragglers
from tests.conftest import compose_config


@pytest.fixture(autouse=True)
def task_identity():
    set_task_identity(run_id=7, node_id=0)


NODE_PARTITIONS = {1000 + 7 * p: p for p in range(10)}


def configured(strategy, fraction, drop, server_round=3, epochs=20):
    wrapped = Stragglers(strategy, NODE_PARTITIONS, fraction, drop, seed=5)
    grid = NodeSubsetGrid(None, list(NODE_PARTITIONS))
    config = ConfigRecord({"local-epochs": epochs, "lr": 0.01})
    messages = wrapped.configure_train(server_round, ArrayRecord(), config, grid)
    return {NODE_PARTITIONS[m.metadata.dst_node_id]: int(m.content["config"]["local-epochs"]) for m in messages}


def fedavg():
    return FedAvg(min_train_nodes=1, min_available_nodes=1)


def test_draw_takes_the_rounded_fraction_with_epochs_in_one_to_e():
    drawn = draw_stragglers(seed=0, server_round=1, partitions=list(range(10)), fraction=0.5, max_epochs=20)
    assert len(drawn) == 5
    assert set(drawn) <= set(range(10))
    assert all(1 <= e <= 20 for e in drawn.values())
    assert draw_stragglers(0, 1, list(range(10)), 0.0, 20) == {}
    assert set(draw_stragglers(0, 1, list(range(10)), 1.0, 20)) == set(range(10))


def test_draw_depends_on_the_round_set_not_its_order():
    partitions = [4, 9, 1, 7, 3, 8]
    first = draw_stragglers(2, 6, partitions, 0.5, 20)
    assert draw_stragglers(2, 6, partitions[::-1], 0.5, 20) == first
    others = [draw_stragglers(2, r, partitions, 0.5, 20) for r in range(7, 12)]
    assert any(other != first for other in others)


def test_epochs_are_uniform_over_one_to_e():
    epochs = np.concatenate(
        [list(draw_stragglers(1, r, list(range(20)), 0.5, 4).values()) for r in range(1, 801)]
    )
    counts = np.bincount(epochs, minlength=5)[1:]
    expected = len(epochs) / 4  # 8000 draws, 2000 per value, std ~ 38.7
    assert counts.sum() == 8000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(len(epochs) * 0.25 * 0.75))


def test_kept_stragglers_get_their_drawn_epochs_and_the_rest_get_e():
    epochs = configured(fedavg(), fraction=0.5, drop=False)
    stragglers = draw_stragglers(5, 3, list(range(10)), 0.5, 20)
    assert set(epochs) == set(range(10))
    for partition, local_epochs in epochs.items():
        assert local_epochs == stragglers.get(partition, 20)


def test_dropped_stragglers_get_no_training_message():
    epochs = configured(fedavg(), fraction=0.9, drop=True)
    stragglers = draw_stragglers(5, 3, list(range(10)), 0.9, 20)
    assert len(stragglers) == 9
    assert epochs == {p: 20 for p in range(10) if p not in stragglers}


def test_the_same_clients_straggle_whichever_strategy_runs():
    fedprox = FedProx(proximal_mu=1.0, min_train_nodes=1, min_available_nodes=1)
    assert configured(fedavg(), 0.5, drop=False) == configured(fedprox, 0.5, drop=False)


def test_the_strategy_shared_config_is_not_changed():
    strategy = fedavg()
    wrapped = Stragglers(strategy, NODE_PARTITIONS, 1.0, drop=False, seed=5)
    config = ConfigRecord({"local-epochs": 20})
    messages = list(wrapped.configure_train(1, ArrayRecord(), config, NodeSubsetGrid(None, list(NODE_PARTITIONS))))
    assert config["local-epochs"] == 20
    assert len({id(m.content["config"]) for m in messages}) == len(messages)


def _client_epochs(run_dir, server_round):
    frame = load(run_dir)
    rows = frame[(frame["round"] == server_round) & (frame["stage"] == "train") & (frame["metric"] == "local-epochs")]
    rows = rows[rows["client"].notna()]
    return {int(c): int(v) for c, v in zip(rows["client"], rows["value"])}


@pytest.mark.parametrize("drop", [False, True])
def test_a_run_trains_stragglers_as_drawn(tmp_path, drop):
    cfg = compose_config("num_clients=8", "clients_per_round=6", "client.local_epochs=3", "stragglers=0.5",
                         f"drop_stragglers={str(drop).lower()}", "num_rounds=2")
    run(cfg, tmp_path, quiet=True)
    for server_round in (1, 2):
        trained = sample_partitions(cfg.seed, server_round, "train", 8, 6)
        stragglers = draw_stragglers(cfg.seed, server_round, trained, 0.5, 3)
        if drop:
            expected = {p: 3 for p in trained if p not in stragglers}
        else:
            expected = {p: stragglers.get(p, 3) for p in trained}
        assert _client_epochs(tmp_path, server_round) == expected
