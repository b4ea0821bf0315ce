"""Attacks: the seeded malicious set, client-side poisoning, ALIE and IPM on the server, the backdoor, bad input."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, FedProx

from fedsim.attacks import ALIE, IPM, Backdoor, Gaussian, NoAttack, SignFlip
from fedsim.attacks.adversaries import Adversaries, draw_malicious
from fedsim.attacks.client import ATTACK_KEY, attack_mod, attacked_data, client_attack
from fedsim.attacks.omniscient import alie_z
from fedsim.attacks.poisoning import FlipLabels, PlantBackdoor, stamp_trigger
from fedsim.attacks.updates import FlipUpdate, NoiseUpdate, ScaleUpdate
from fedsim.config.checks import ConfigError, FedsimWarning
from fedsim.data import ClientData
from fedsim.flower_internals import set_task_identity
from fedsim.plan import build_plan
from fedsim.results import load
from fedsim.runner import run
from fedsim.sampling import NodeSubsetGrid, sample_partitions
from tests.conftest import compose_config

NODE_PARTITIONS = {100 + 3 * p: p for p in range(10)}
CONTEXT = Context(run_id=7, node_id=1, node_config={}, state=RecordDict(), run_config={})


@pytest.fixture(autouse=True)
def task_identity():
    set_task_identity(run_id=7, node_id=0)


def record(**values) -> ArrayRecord:
    return ArrayRecord({name: Array(np.asarray(value)) for name, value in values.items()})


def fedavg():
    return FedAvg(min_train_nodes=1, min_available_nodes=1)


def configure(strategy, attack, server_round=1, seed=5, sent=None):
    wrapper = Adversaries(strategy, attack, NODE_PARTITIONS, seed)
    grid = NodeSubsetGrid(None, list(NODE_PARTITIONS))
    sent = sent if sent is not None else record(w=np.zeros(3, dtype=np.float32))
    messages = list(wrapper.configure_train(server_round, sent, ConfigRecord({"lr": 0.1}), grid))
    return wrapper, messages


# --- the malicious set ------------------------------------------------------------------------


def test_the_malicious_set_is_the_rounded_fraction_drawn_from_the_seed_alone():
    drawn = draw_malicious(seed=3, num_clients=20, fraction=0.2)
    assert len(drawn) == 4 and drawn <= set(range(20))
    assert draw_malicious(3, 20, 0.2) == drawn  # a rerun
    assert len(draw_malicious(3, 10, 0.25)) == 2  # round(2.5)
    assert draw_malicious(3, 20, 0.0) == frozenset()
    assert any(draw_malicious(seed, 20, 0.2) != drawn for seed in range(4, 9))


def test_the_same_clients_attack_whichever_strategy_runs_and_in_every_round():
    fedprox = FedProx(proximal_mu=1.0, min_train_nodes=1, min_available_nodes=1)
    attack = SignFlip(fraction=0.3)
    expected = draw_malicious(5, len(NODE_PARTITIONS), 0.3)
    for strategy in (fedavg(), fedprox):
        for server_round in (1, 4):
            _, messages = configure(strategy, attack, server_round)
            attacking = {NODE_PARTITIONS[m.metadata.dst_node_id] for m in messages if ATTACK_KEY in m.content["config"]}
            assert attacking == expected


def test_honest_messages_and_the_shared_config_are_left_as_they_were():
    wrapper = Adversaries(fedavg(), SignFlip(fraction=0.3), NODE_PARTITIONS, 5)
    config = ConfigRecord({"lr": 0.1})
    messages = list(wrapper.configure_train(1, record(w=[0.0]), config, NodeSubsetGrid(None, list(NODE_PARTITIONS))))
    honest = [m for m in messages if ATTACK_KEY not in m.content["config"]]
    assert len(honest) == 7
    assert all(set(m.content["config"]) == {"lr", "server-round"} for m in honest)
    assert not [key for key in config if key.startswith(ATTACK_KEY)]  # the config the strategy shares


def test_no_attack_wraps_nothing():
    strategy = fedavg()
    assert NoAttack().wrap(strategy, NODE_PARTITIONS, 0) is strategy


# --- client-side attacks ---------------------------------------------------------------------------


SENT = record(w=np.array([1.0, 1.0], dtype=np.float32), steps=np.array([4], dtype=np.int64))
TRAINED = record(w=np.array([3.0, 0.0], dtype=np.float32), steps=np.array([9], dtype=np.int64))  # update (2, -1)


def poisoned(attack) -> dict:
    out = attack.poison_arrays(SENT, TRAINED)
    return {name: array.numpy() for name, array in out.items()}


def test_update_attacks_change_the_float_update_and_keep_integer_arrays():
    assert poisoned(FlipUpdate())["w"].tolist() == [-1.0, 2.0]  # 1 - 2, 1 + 1
    assert poisoned(ScaleUpdate(factor=10.0))["w"].tolist() == [21.0, -9.0]  # 1 + 20, 1 - 10
    for attack in (FlipUpdate(), ScaleUpdate(factor=10.0), NoiseUpdate(std=2.0, seed=11)):
        out = poisoned(attack)
        assert out["steps"].tolist() == [9] and out["w"].dtype == np.float32


def test_gaussian_noise_replaces_the_update_and_is_the_same_on_rerun():
    first = poisoned(NoiseUpdate(std=2.0, seed=11))["w"]
    np.testing.assert_array_equal(poisoned(NoiseUpdate(std=2.0, seed=11))["w"], first)
    noise = np.random.default_rng(11).normal(0.0, 2.0, size=2)
    np.testing.assert_allclose(first, 1.0 + noise, rtol=1e-6)  # the trained values play no part
    assert not np.array_equal(poisoned(NoiseUpdate(std=2.0, seed=12))["w"], first)


def test_gaussian_seeds_differ_by_round_and_client():
    attack = Gaussian(fraction=0.5, std=1.0)
    seeds = {attack.client_attack(0, r, p).seed for r in (1, 2) for p in (0, 1)}
    assert len(seeds) == 4
    assert attack.client_attack(0, 1, 0) == attack.client_attack(0, 1, 0)


def test_an_attack_travels_in_the_config_and_comes_back_equal():
    attack = PlantBackdoor(factor=2.0, target_class=3, poison_fraction=0.5, trigger_size=2,
                           trigger_value=[1.5, 2.5], seed=8)
    assert client_attack(ConfigRecord(attack.to_config())) == attack
    assert client_attack(ConfigRecord({"lr": 0.1})) is None


def train_message(config: dict) -> Message:
    content = RecordDict({"arrays": SENT, "config": ConfigRecord(config)})
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def reply_trained(message: Message, context: Context) -> Message:
    return Message(RecordDict({"arrays": TRAINED, "metrics": MetricRecord({"num-examples": 4})}), reply_to=message)


def test_the_mod_replaces_a_malicious_reply_and_passes_an_honest_one():
    attacked = attack_mod(train_message(FlipUpdate().to_config()), CONTEXT, reply_trained)
    assert attacked.content["arrays"]["w"].numpy().tolist() == [-1.0, 2.0]
    honest = attack_mod(train_message({"lr": 0.1}), CONTEXT, reply_trained)
    assert honest.content["arrays"] is TRAINED


def client_data(labels) -> ClientData:
    labels = torch.tensor(labels)
    images = torch.zeros(len(labels), 1, 4, 4)
    return ClientData(images, labels, images[:1], labels[:1])


def test_label_flip_maps_y_to_c_minus_1_minus_y_on_training_data_only():
    data = client_data([0, 1, 9, 4])
    flipped = attacked_data(data, ConfigRecord(FlipLabels(num_classes=10).to_config()))
    assert flipped.train_y.tolist() == [9, 8, 0, 5]
    assert flipped.eval_y.tolist() == [0]
    assert data.train_y.tolist() == [0, 1, 9, 4]  # the cached data stay clean
    assert attacked_data(data, ConfigRecord({"lr": 0.1})) is data


def test_the_trigger_is_a_square_in_the_bottom_right_corner_one_value_per_channel():
    images = torch.zeros(2, 3, 5, 5)
    stamped = stamp_trigger(images, 2, [1.0, 2.0, 3.0])
    expected = torch.zeros(2, 3, 5, 5)
    for channel, value in enumerate([1.0, 2.0, 3.0]):
        expected[:, channel, 3:5, 3:5] = value
    assert torch.equal(stamped, expected)
    assert torch.count_nonzero(images) == 0


def test_the_backdoor_stamps_and_relabels_the_poisoned_share():
    data = client_data([1, 2, 3, 4, 5, 6, 7, 8])
    attack = PlantBackdoor(factor=1.0, target_class=0, poison_fraction=0.5, trigger_size=2, trigger_value=[7.0], seed=3)
    out = attack.poison_data(data)
    stamped = [i for i in range(8) if out.train_x[i].abs().sum() > 0]
    assert len(stamped) == 4
    for i in range(8):
        corner = out.train_x[i, 0, 2:, 2:]
        if i in stamped:
            assert torch.all(corner == 7.0) and out.train_y[i] == 0
            assert out.train_x[i, 0].sum() == 4 * 7.0  # only the 2 x 2 corner
        else:
            assert out.train_y[i] == data.train_y[i]
    assert torch.equal(attack.poison_data(data).train_x, out.train_x)  # seeded
    assert attack.poison_arrays(SENT, TRAINED) is TRAINED  # boost 1: the update as trained


def test_the_triggered_test_set_leaves_out_the_target_class():
    attack = Backdoor(fraction=0.2, target_class=2, poison_fraction=0.5, trigger_size=1, boost=1.0)
    attack.trigger_value = [5.0]
    x, y = torch.zeros(4, 1, 3, 3), torch.tensor([2, 0, 1, 2])
    triggered_x, triggered_y = attack.triggered_test_set(x, y)
    assert triggered_y.tolist() == [2, 2] and triggered_x.shape == (2, 1, 3, 3)
    assert torch.all(triggered_x[:, 0, 2, 2] == 5.0) and triggered_x.sum() == 10.0


# --- server-side attacks -------------------------------------------------------------------------

# Five clients; partitions 1 and 3 malicious (set by hand below), three benign updates.
BENIGN = {0: [1.0, 2.0, 3.0], 2: [3.0, 2.0, 1.0], 4: [2.0, 2.0, 2.0]}
GLOBAL = np.array([10.0, 10.0, 10.0], dtype=np.float32)


def five_clients(attack):
    nodes = {node: p for node, p in NODE_PARTITIONS.items() if p < 5}
    wrapper = Adversaries(fedavg(), attack, nodes, seed=0)
    wrapper.malicious = frozenset({1, 3})
    messages = list(wrapper.configure_train(1, record(w=GLOBAL), ConfigRecord({"lr": 0.1}), NodeSubsetGrid(None, list(nodes))))
    replies = []
    for message in reversed(messages):  # any arrival order
        partition = nodes[message.metadata.dst_node_id]
        update = BENIGN.get(partition, [-50.0, 60.0, 70.0])  # what the attackers trained is replaced
        content = RecordDict({"arrays": record(w=GLOBAL + np.asarray(update, dtype=np.float32)),
                              "metrics": MetricRecord({"num-examples": 10})})
        replies.append(Message(content, reply_to=message))
    return wrapper, replies


def test_the_alie_z_follows_the_paper():
    # n = 5, f = 2: s = floor(3.5) - 2 = 1, z = Phi^-1(4/5) = 0.8416; n = 10, f = 2: s = 4, z = Phi^-1(0.6)
    assert alie_z(5, 2) == pytest.approx(0.8416212335729143)
    assert alie_z(10, 2) == pytest.approx(0.2533471031357997)
    assert alie_z(4, 3) == pytest.approx(0.6744897501960817)  # s = 0 is kept at 1: Phi^-1(3/4)


def test_alie_sends_mean_minus_z_std_of_the_benign_updates():
    wrapper, replies = five_clients(ALIE(fraction=0.4, z=None))
    arrays, metrics = wrapper.aggregate_train(1, replies)
    benign = np.array(list(BENIGN.values()))
    crafted = benign.mean(axis=0) - 0.8416212335729143 * np.sqrt(((benign - benign.mean(axis=0)) ** 2).mean(axis=0))
    for reply in replies:
        if NODE_PARTITIONS[reply.metadata.src_node_id] in (1, 3):
            np.testing.assert_allclose(reply.content["arrays"]["w"].numpy(), GLOBAL + crafted, rtol=1e-6)
    # FedAvg over five equal clients: (sum of the benign updates + 2 crafted) / 5
    np.testing.assert_allclose(arrays["w"].numpy(), GLOBAL + (benign.sum(axis=0) + 2 * crafted) / 5, rtol=1e-6)
    assert metrics["malicious"] == 2


def test_alie_with_a_given_z():
    wrapper, replies = five_clients(ALIE(fraction=0.4, z=1.5))
    arrays, _ = wrapper.aggregate_train(1, replies)
    # mean (2, 2, 2), population std (sqrt(2/3), 0, sqrt(2/3))
    crafted = np.array([2 - 1.5 * np.sqrt(2 / 3), 2.0, 2 - 1.5 * np.sqrt(2 / 3)])
    np.testing.assert_allclose(arrays["w"].numpy(), GLOBAL + (np.array([6.0, 6.0, 6.0]) + 2 * crafted) / 5, rtol=1e-6)


def test_ipm_sends_minus_epsilon_times_the_benign_mean():
    wrapper, replies = five_clients(IPM(fraction=0.4, epsilon=0.5))
    arrays, _ = wrapper.aggregate_train(1, replies)
    # crafted -0.5 * (2, 2, 2) = (-1, -1, -1); FedAvg: ((6, 6, 6) + 2 * (-1, -1, -1)) / 5 = 0.8
    np.testing.assert_allclose(arrays["w"].numpy(), GLOBAL + 0.8, rtol=1e-6)


def test_a_client_side_attack_leaves_the_replies_to_the_clients():
    wrapper, replies = five_clients(SignFlip(fraction=0.4))
    arrays, _ = wrapper.aggregate_train(1, replies)
    honest = (np.array(list(BENIGN.values())).sum(axis=0) + 2 * np.array([-50.0, 60.0, 70.0])) / 5
    np.testing.assert_allclose(arrays["w"].numpy(), GLOBAL + honest, rtol=1e-6)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["attack=backdoor", "dataset=mnist1d", "dataset.num_samples=500", "model=cnn1d"],
         ("attack=backdoor stamps a square of pixels, so it needs images (channels, height, width) of real values; "
          "the dataset gives real values of shape (40,).")),
        (["attack=backdoor", "attack.trigger_size=9"],
         "attack.trigger_size must be at most the images' height and width, 8 x 8 (got 9)."),
        (["attack=backdoor", "attack.target_class=10"],
         "attack.target_class must be a class of the dataset, 0 to 9 (got 10)."),
    ],
)
def test_an_attack_the_data_cannot_take_is_refused_in_one_sentence(overrides, message):
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config(*overrides))
    assert str(raised.value) == message


def test_more_attackers_than_a_robust_strategy_tolerates_give_one_warning():
    with pytest.warns(FedsimWarning) as caught:
        build_plan(compose_config("strategy=krum", "attack=sign_flip", "attack.fraction=0.4"))
    assert [str(w.message) for w in caught] == [
        ("attack.fraction=0.4 makes 2 of the num_clients=5 clients malicious, up to 2 in a round of "
         "clients_per_round=5, more than strategy.num_malicious_nodes=0 tolerates.")
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FedsimWarning)
        build_plan(compose_config("strategy=krum", "strategy.num_malicious_nodes=1", "attack=sign_flip"))


# --- runs ----------------------------------------------------------------------------------------


def test_a_run_records_the_malicious_clients_of_each_round(tmp_path):
    cfg = compose_config("num_clients=8", "clients_per_round=4", "attack=sign_flip", "attack.fraction=0.5")
    run(cfg, tmp_path, quiet=True)
    frame = load(tmp_path)
    rows = frame[frame["metric"] == "malicious"].set_index("round")["value"]
    malicious = draw_malicious(cfg.seed, 8, 0.5)
    for server_round in (1, 2):
        drawn = sample_partitions(cfg.seed, server_round, "train", 8, 4)
        assert rows[server_round] == len(malicious & set(drawn))


def test_a_gaussian_run_is_bitwise_the_same_on_rerun(tmp_path):
    cfg = compose_config("attack=gaussian", "attack.fraction=0.4")
    frames = []
    for name in ("a", "b"):
        run(cfg, tmp_path / name, quiet=True)
        frame = load(tmp_path / name)
        frames.append(frame[frame["stage"] != "system"][["round", "stage", "client", "metric", "value"]])
    assert frames[0].reset_index(drop=True).equals(frames[1].reset_index(drop=True))


def test_a_backdoor_run_records_its_success_rate_next_to_accuracy(tmp_path):
    run(compose_config("attack=backdoor"), tmp_path, quiet=True)
    frame = load(tmp_path)
    central = frame[frame["stage"] == "centralized"]
    rates = central[central["metric"] == "attack_success_rate"]
    assert sorted(rates["round"]) == [0, 1, 2]
    assert all(0 <= rate <= 1 for rate in rates["value"])
    assert sorted(central[central["metric"] == "accuracy"]["round"]) == [0, 1, 2]


def test_client_attacks_are_frozen_dataclasses_of_config_values():
    for attack in (FlipUpdate(), NoiseUpdate(std=1.0, seed=1), ScaleUpdate(factor=2.0), FlipLabels(num_classes=3)):
        assert dataclasses.is_dataclass(attack)
        ConfigRecord(attack.to_config())  # every value is one a config record takes


@pytest.mark.parametrize("overrides", [["attack=ipm", "faults.dropout=0.3"], ["attack=backdoor", "attack.boost=2"]],
                         ids=lambda overrides: " ".join(overrides))
def test_a_resumed_attacked_run_records_what_the_uninterrupted_run_records(tmp_path, overrides):
    from tests.test_checkpoint import SMALL, interrupted_and_resumed

    whole, resumed = interrupted_and_resumed(tmp_path, [*SMALL, *overrides])
    assert (whole["metric"] == "malicious").any()
    pd.testing.assert_frame_equal(resumed, whole)
