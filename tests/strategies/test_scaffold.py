"""SCAFFOLD: the server's model and control-variate updates, the client's corrected SGD, a run."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedsim.client_half import ClientHalf
from strategies.scaffold import (
    CLIENT_CONTROL_KEY,
    CONTROL_DELTA_KEY,
    SERVER_CONTROL_KEY,
    Scaffold,
    ScaffoldClient,
)
from tests.strategies.helpers import (
    TAKE_ALL,
    assert_trains,
    client_reply,
    full_batch_gradient,
    grid,
    per_client,
    record,
    replies_to,
    run_client,
    run_table,
    toy_data,
    toy_model,
    train_config,
    values,
)


def test_server_update_and_control_variates_match_hand_computed_values():
    strategy = Scaffold(num_clients=4, server_learning_rate=0.5, weighting="examples", **TAKE_ALL)
    messages = list(strategy.configure_train(1, record(w=[1, 2]), ConfigRecord(), grid(2)))
    assert all((values(m.content[SERVER_CONTROL_KEY])["w"] == 0).all() for m in messages)
    contents = [
        client_reply(record(w=[0, 4]), 1, **{CONTROL_DELTA_KEY: record(w=[1, -1])}),
        client_reply(record(w=[3, 2]), 3, **{CONTROL_DELTA_KEY: record(w=[2, 0])}),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies_to(messages, contents))
    # mean update (1/4) [-1, 2] + (3/4) [2, 0] = [1.25, 0.5]; x + 0.5 * that
    np.testing.assert_allclose(values(arrays)["w"], [1.625, 2.25])
    assert metrics["loss"] == 1.0

    # c = 0 + ([1, -1] + [2, 0]) / N with N = 4 clients, two of which replied
    messages = list(strategy.configure_train(2, arrays, ConfigRecord(), grid(1)))
    np.testing.assert_allclose(values(messages[0].content[SERVER_CONTROL_KEY])["w"], [0.75, -0.25])
    contents = [client_reply(record(w=[1.625, 2.25]), 5, **{CONTROL_DELTA_KEY: record(w=[4, 4])})]
    strategy.aggregate_train(2, replies_to(messages, contents))
    messages = list(strategy.configure_train(3, arrays, ConfigRecord(), grid(1)))
    np.testing.assert_allclose(values(messages[0].content[SERVER_CONTROL_KEY])["w"], [1.75, 0.75])


def scaffold_message(model, server_control, **config):
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "config": train_config(**config),
            SERVER_CONTROL_KEY: ArrayRecord(server_control),
        }
    )
    return Message(content, dst_node_id=1, message_type="train")


def test_client_steps_along_g_minus_ci_plus_c_and_option_two_recovers_the_local_gradient():
    data, lr = toy_data(1), 0.3
    model = toy_model()
    x = {name: p.detach().clone() for name, p in model.named_parameters()}
    c = {name: torch.full_like(p, 0.5) for name, p in x.items()}
    c_i = {name: torch.linspace(-1, 1, p.numel()).reshape(p.shape) for name, p in x.items()}
    state = RecordDict()
    state[CLIENT_CONTROL_KEY] = record(**{name: t.tolist() for name, t in c_i.items()})
    g = full_batch_gradient(toy_model(), data)

    content = run_client(ScaffoldClient, scaffold_message(model, c, lr=lr), state, data, model)

    y, delta = values(content["arrays"]), values(content[CONTROL_DELTA_KEY])
    new_c_i = values(state[CLIENT_CONTROL_KEY])
    for name in x:
        expected_y = x[name] - lr * (g[name] - c_i[name] + c[name])
        np.testing.assert_allclose(y[name], expected_y.numpy(), atol=1e-6)
        # one full-batch step: c_i+ = c_i - c + (x - y) / lr = g, the local gradient at x
        np.testing.assert_allclose(new_c_i[name], g[name].numpy(), atol=1e-5)
        np.testing.assert_allclose(delta[name], (g[name] - c_i[name]).numpy(), atol=1e-5)
    assert content["metrics"]["control_variate_norm"] == pytest.approx(
        float(torch.sqrt(sum((t.double() ** 2).sum() for t in c_i.values())))
    )


def test_option_two_divides_by_the_number_of_local_steps():
    data, lr = toy_data(2), 0.1
    model = toy_model()
    x = {name: p.detach().clone() for name, p in model.named_parameters()}
    c = {name: torch.full_like(p, 0.25) for name, p in x.items()}
    state = RecordDict()
    # 2 epochs of 12 examples in batches of 6: K = 4 steps
    content = run_client(ScaffoldClient, scaffold_message(model, c, lr=lr, epochs=2, batch_size=6), state, data, model)
    assert content["metrics"]["num-steps"] == 4
    y, delta = values(content["arrays"]), values(content[CONTROL_DELTA_KEY])
    for name in x:
        np.testing.assert_allclose(delta[name], (x[name].numpy() - y[name]) / (4 * lr) - 0.25, atol=1e-5)


def test_first_round_with_zero_control_variates_is_fedavg():
    clients = [toy_data(seed, n=6 + 3 * seed) for seed in range(3)]
    zero = {name: torch.zeros_like(p) for name, p in toy_model().named_parameters()}
    strategy = Scaffold(num_clients=5, server_learning_rate=1.0, weighting="examples", **TAKE_ALL)
    global_arrays = ArrayRecord(toy_model().state_dict())
    messages = list(strategy.configure_train(1, global_arrays, train_config(batch_size=4), grid(3)))

    contents = [
        run_client(ScaffoldClient, scaffold_message(toy_model(), zero, batch_size=4), RecordDict(), data, toy_model())
        for data in clients
    ]
    plain = [
        run_client(ClientHalf, scaffold_message(toy_model(), zero, batch_size=4), RecordDict(), data, toy_model())
        for data in clients
    ]
    for scaffold_content, plain_content in zip(contents, plain):
        for key, value in values(plain_content["arrays"]).items():
            np.testing.assert_array_equal(values(scaffold_content["arrays"])[key], value)

    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    fedavg_arrays, _ = FedAvg(**TAKE_ALL).aggregate_train(1, replies_to(messages, plain))
    for key, value in values(fedavg_arrays).items():
        np.testing.assert_allclose(values(arrays)[key], value, atol=1e-6)


def test_a_run_trains_and_keeps_each_clients_control_variate(tmp_path, fedavg_rounds):
    frame, rounds = run_table(tmp_path, "strategy=scaffold")
    assert_trains(rounds)
    assert rounds.loc[1, "centralized_loss"] == pytest.approx(fedavg_rounds.loc[1, "centralized_loss"], abs=1e-6)
    norms = per_client(frame, "train", "control_variate_norm")
    assert (norms.loc[1] == 0).all()  # c_i starts at zero
    assert (norms.loc[2] > 0).all()  # and round 1's c_i+ was kept in every client's state
