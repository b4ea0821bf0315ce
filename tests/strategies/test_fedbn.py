"""FedBN: BatchNorm layers stay with each client while the rest is averaged; a run with a BatchNorm model."""

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from fedsim.data import ClientData
from fedsim.training import evaluate
from strategies.fedbn import LOCAL_BATCH_NORM_KEY, FedBN, LocalBatchNormClient, batch_norm_keys
from tests.strategies.helpers import (
    TAKE_ALL,
    SmallBatchNormNet,
    assert_trains,
    client_reply,
    grid,
    record,
    replies_to,
    run_client,
    run_table,
    train_config,
    values,
)

INPUT_SHAPE = (1, 4, 4)
BATCH_NORM = {"norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"}


def bn_model(seed: int = 0) -> SmallBatchNormNet:
    torch.manual_seed(seed)
    return SmallBatchNormNet(INPUT_SHAPE, 3)


def shifted_data(seed: int, shift: float) -> ClientData:
    """Images whose features are shifted by ``shift``: the feature skew FedBN is for."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(10, *INPUT_SHAPE, generator=generator) + shift
    y = torch.randint(0, 3, (10,), generator=generator)
    return ClientData(x, y, x, y)


def test_batch_norm_keys_are_the_affine_weights_and_running_statistics():
    assert batch_norm_keys(bn_model()) == BATCH_NORM


def test_server_averages_every_array_weighted_by_examples():
    strategy = FedBN(weighting="examples", **TAKE_ALL)
    global_arrays = record(**{"conv.weight": [0, 0], "norm.running_mean": [0, 0]})
    messages = list(strategy.configure_train(1, global_arrays, ConfigRecord(), grid(2)))
    contents = [
        client_reply(record(**{"conv.weight": [1, 2], "norm.running_mean": [0, 4]}), 1),
        client_reply(record(**{"conv.weight": [3, 6], "norm.running_mean": [4, 0]}), 3),
    ]
    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    np.testing.assert_allclose(values(arrays)["conv.weight"], [2.5, 5])
    np.testing.assert_allclose(values(arrays)["norm.running_mean"], [3, 1])


def message(arrays: ArrayRecord, message_type: str = "train") -> Message:
    content = RecordDict({"arrays": arrays, "config": train_config(batch_size=5)})
    return Message(content, dst_node_id=1, message_type=message_type)


def test_clients_keep_their_batch_norm_layers_while_the_rest_is_averaged():
    strategy = FedBN(weighting="examples", **TAKE_ALL)
    clients = [shifted_data(0, shift=0.0), shifted_data(1, shift=5.0)]
    states = [RecordDict(), RecordDict()]
    arrays = ArrayRecord(bn_model().state_dict())
    for server_round in (1, 2):
        messages = list(strategy.configure_train(server_round, arrays, train_config(batch_size=5), grid(2)))
        contents = [
            run_client(LocalBatchNormClient, m, state, data, bn_model(seed=3))
            for m, state, data in zip(messages, states, clients)
        ]
        arrays, _ = strategy.aggregate_train(server_round, replies_to(messages, contents))

    local = [values(state[LOCAL_BATCH_NORM_KEY]) for state in states]
    assert set(local[0]) == BATCH_NORM
    # each client's running mean follows its own features (shifted by 0 and by 5), not the average
    assert np.abs(local[1]["norm.running_mean"] - local[0]["norm.running_mean"]).max() > 1
    global_values = values(arrays)
    assert not np.allclose(global_values["norm.running_mean"], local[0]["norm.running_mean"])

    # the next messages load the averaged weights but put the client's own BatchNorm layers back
    for message_type in ("train", "evaluate"):
        model = bn_model(seed=5)
        LocalBatchNormClient(message(arrays, message_type), states[1], clients[1], seed=0).load(model)
        for key, value in model.state_dict().items():
            expected = local[1][key] if key in BATCH_NORM else global_values[key]
            np.testing.assert_array_equal(value.numpy(), expected)

    # so federated evaluation scores the averaged weights with the client's BatchNorm layers
    half = LocalBatchNormClient(message(arrays, "evaluate"), states[1], clients[1], seed=0)
    model = bn_model(seed=5)
    half.load(model)
    assembled = bn_model(seed=6)
    assembled.load_state_dict({**arrays.to_torch_state_dict(), **states[1][LOCAL_BATCH_NORM_KEY].to_torch_state_dict()})
    assert half.evaluate(model) == evaluate(assembled, clients[1].eval_x, clients[1].eval_y)


def test_a_client_before_its_first_round_uses_the_global_batch_norm_layers():
    arrays = ArrayRecord(bn_model(seed=1).state_dict())
    model = bn_model(seed=2)
    LocalBatchNormClient(message(arrays), RecordDict(), shifted_data(0, 0.0), seed=0).load(model)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), values(arrays)[key])


def test_a_run_with_a_batch_norm_model_trains(tmp_path):
    model = "model._target_=tests.strategies.helpers.SmallBatchNormNet"
    _, rounds = run_table(tmp_path, "strategy=fedbn", "model=logreg", model)
    assert_trains(rounds)


def test_fedbn_runs_from_the_config_with_the_batch_norm_cnn(tmp_path):
    from fedsim.results import load, round_table
    from fedsim.runner import run
    from tests.conftest import compose_config

    cfg = compose_config("strategy=fedbn", "model=cnn", "model.batch_norm=true", "model.channels=[4,8]",
                         "model.hidden_size=16", "num_rounds=2")
    run(cfg, tmp_path, quiet=True)
    table = round_table(load(tmp_path))
    assert table.loc[2, "centralized_loss"] < table.loc[0, "centralized_loss"]
    assert table.loc[2, "federated_accuracy"] > 0.2
