"""Seeded client sampling: independent of node ids, their order and global random state."""

import random

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedsim.flower_internals import create_run, set_task_identity
from fedsim.sampling import NodeSubsetGrid, SeededSampling, sample_partitions


@pytest.fixture(autouse=True)
def task_identity():
    set_task_identity(run_id=7, node_id=0)


class ListedNodesGrid(NodeSubsetGrid):
    """A grid that only lists node ids (sampling never sends anything)."""

    def __init__(self, node_ids: list[int]) -> None:
        super().__init__(grid=None, node_ids=node_ids)


def test_sample_partitions_is_a_sorted_draw_without_replacement():
    drawn = sample_partitions(seed=3, server_round=1, stage="train", num_clients=100, size=10)
    assert len(drawn) == len(set(drawn)) == 10
    assert drawn == sorted(drawn)
    assert all(0 <= p < 100 for p in drawn)


def test_sample_partitions_ignores_global_random_state():
    random.seed(1)
    np.random.seed(1)
    first = sample_partitions(seed=5, server_round=4, stage="train", num_clients=50, size=7)
    random.seed(2)
    np.random.seed(2)
    random.random()
    assert sample_partitions(seed=5, server_round=4, stage="train", num_clients=50, size=7) == first


def test_sample_partitions_differs_by_round_stage_and_seed():
    def draw(seed=0, server_round=1, stage="train"):
        return sample_partitions(seed, server_round, stage, num_clients=1000, size=10)

    assert draw() != draw(server_round=2)
    assert draw() != draw(stage="evaluate")
    assert draw() != draw(seed=1)


def test_every_client_is_drawn_about_equally_often():
    counts = np.zeros(20)
    for server_round in range(1, 2001):
        counts[sample_partitions(0, server_round, "train", num_clients=20, size=5)] += 1
    # each client is drawn with probability 1/4 per round: mean 500, std ~19.4
    assert np.all(np.abs(counts - 500) < 6 * np.sqrt(2000 * 0.25 * 0.75))


def _strategy(node_partitions, clients_per_round=3, eval_clients_per_round=2):
    inner = FedAvg(min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
    return SeededSampling(inner, node_partitions, clients_per_round, eval_clients_per_round, seed=11)


def test_configured_nodes_follow_partition_ids_not_node_ids_or_listing_order():
    partitions = list(range(8))
    node_ids_a = [9001, 17, 123456789, 5, 42, 777, 31337, 2]
    node_ids_b = [88, 3, 999, 1234, 56, 7, 10**12, 64]  # other ids, as another engine would give
    for node_ids in (node_ids_a, node_ids_b):
        node_partitions = dict(zip(node_ids, partitions))
        expected = sample_partitions(11, 4, "train", 8, 3)
        for listing in (node_ids, node_ids[::-1]):
            random.seed(len(listing) + listing[0])
            messages = _strategy(node_partitions).configure_train(
                4, ArrayRecord(), ConfigRecord(), ListedNodesGrid(listing)
            )
            chosen = sorted(node_partitions[m.metadata.dst_node_id] for m in messages)
            assert chosen == expected


def test_evaluation_draw_has_its_own_size_and_zero_skips_it():
    node_partitions = {100 + p: p for p in range(8)}
    grid = ListedNodesGrid(list(node_partitions))
    messages = _strategy(node_partitions).configure_evaluate(2, ArrayRecord(), ConfigRecord(), grid)
    assert sorted(node_partitions[m.metadata.dst_node_id] for m in messages) == sample_partitions(11, 2, "evaluate", 8, 2)
    skipped = _strategy(node_partitions, eval_clients_per_round=0)
    assert list(skipped.configure_evaluate(2, ArrayRecord(), ConfigRecord(), grid)) == []


def test_replies_reach_the_strategy_in_partition_order():
    node_partitions = {50: 2, 10: 0, 30: 1}
    seen = []

    class Spy(FedAvg):
        def aggregate_train(self, server_round, replies):
            seen.extend(node_partitions[r.metadata.src_node_id] for r in replies)
            return None, None

    sampling = SeededSampling(Spy(), node_partitions, 3, 3, seed=0)
    replies = []
    for node_id in (30, 50, 10):
        instruction = Message(RecordDict(), dst_node_id=node_id, message_type="train")
        replies.append(Message(RecordDict({"m": MetricRecord({"num-examples": 1})}), reply_to=instruction))
    sampling.aggregate_train(1, replies)
    assert seen == [0, 1, 2]


def test_node_subset_grid_lists_only_its_nodes_and_delegates_the_rest():
    class Recorder(NodeSubsetGrid):
        def __init__(self):
            super().__init__(grid=None, node_ids=[])
            self.sent = None

        def send_and_receive(self, messages, *, timeout=None):
            self.sent = list(messages)
            return ["reply"]

        @property
        def run(self):
            return create_run(5)

    backing = Recorder()
    view = NodeSubsetGrid(backing, [4, 2])
    assert list(view.get_node_ids()) == [4, 2]
    assert [n.node_id for n in view.get_nodes()] == [4, 2]
    assert view.send_and_receive(["m"]) == ["reply"] and backing.sent == ["m"]
    assert view.run.run_id == 5
