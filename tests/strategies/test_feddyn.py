"""FedDyn: the server's h and model against hand-computed values, the client's objective, a run."""

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from torch.nn import functional as F

from strategies.feddyn import ALPHA_KEY, GRADIENT_KEY, FedDyn, FedDynClient
from tests.strategies.helpers import (
    TAKE_ALL,
    assert_trains,
    client_reply,
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


def test_server_state_and_model_match_hand_computed_values():
    strategy = FedDyn(num_clients=4, alpha=0.5, weighting="uniform", **TAKE_ALL)
    messages = list(strategy.configure_train(1, record(w=[1, 2]), ConfigRecord(), grid(2)))
    assert messages[0].content["config"][ALPHA_KEY] == 0.5
    contents = [client_reply(record(w=[0, 4]), 1), client_reply(record(w=[3, 2]), 3)]
    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    # h = -alpha/N * ([-1, 2] + [2, 0]) = [-0.125, -0.25]; x = [1.5, 3] - h / alpha (unweighted mean)
    np.testing.assert_allclose(values(arrays)["w"], [1.75, 3.5])

    messages = list(strategy.configure_train(2, arrays, ConfigRecord(), grid(1)))
    arrays, _ = strategy.aggregate_train(2, replies_to(messages, [client_reply(record(w=[2, 3.5]), 1)]))
    # h = [-0.125, -0.25] - 0.125 * [0.25, 0] = [-0.15625, -0.25]; x = [2, 3.5] - 2 h
    np.testing.assert_allclose(values(arrays)["w"], [2.3125, 4.0])


def feddyn_message(model, alpha, **config) -> Message:
    config = train_config(**config)
    config[ALPHA_KEY] = alpha
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config})
    return Message(content, dst_node_id=1, message_type="train")


def test_client_runs_sgd_on_the_dynamically_regularized_objective():
    alpha, lr, steps = 0.4, 0.2, 3
    data = toy_data(3)
    x = [p.detach().clone() for p in toy_model().parameters()]
    generator = torch.Generator().manual_seed(9)
    previous = {name: torch.randn(p.shape, generator=generator) for name, p in toy_model().named_parameters()}
    state = RecordDict()
    state[GRADIENT_KEY] = ArrayRecord(previous)
    model = toy_model()
    content = run_client(FedDynClient, feddyn_message(model, alpha, lr=lr, epochs=steps), state, data, model)

    reference = toy_model()
    for _ in range(steps):  # full batch: explicit steps on L(w) - <g, w> + alpha/2 ||w - x||^2
        loss = F.cross_entropy(reference(data.train_x), data.train_y)
        for p, g, w in zip(reference.parameters(), previous.values(), x):
            loss = loss - (g * p).sum() + alpha / 2 * ((p - w) ** 2).sum()
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads):
                p -= lr * g
    trained = values(content["arrays"])
    stored = values(state[GRADIENT_KEY])
    for (name, p), g, w in zip(reference.named_parameters(), previous.values(), x):
        np.testing.assert_allclose(trained[name], p.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(stored[name], (g - alpha * (p.detach() - w)).numpy(), atol=1e-5)


def test_server_h_stays_the_mean_of_all_clients_gradient_terms():
    # h^t = h^{t-1} - alpha/N sum (theta_k - x) and g_k <- g_k - alpha (theta_k - x) keep
    # h = (1/N) sum over all N clients of g_k, the identity the paper's server update rests on
    alpha, num_clients = 0.3, 3
    clients = [toy_data(seed, n=8) for seed in range(num_clients)]
    states = [RecordDict() for _ in range(num_clients)]
    strategy = FedDyn(num_clients=num_clients, alpha=alpha, weighting="uniform", **TAKE_ALL)
    arrays = ArrayRecord(toy_model().state_dict())
    for server_round, sampled in enumerate([[0, 1], [1, 2], [0, 2]], start=1):
        messages = list(strategy.configure_train(server_round, arrays, train_config(batch_size=4), grid(len(sampled))))
        contents = [
            run_client(FedDynClient, message, states[k], clients[k], toy_model(), seed=server_round)
            for message, k in zip(messages, sampled)
        ]
        arrays, _ = strategy.aggregate_train(server_round, replies_to(messages, contents))
        for name, h in strategy.h.items():
            stored = [values(state[GRADIENT_KEY])[name] for state in states if GRADIENT_KEY in state]
            np.testing.assert_allclose(h, sum(stored) / num_clients, atol=1e-6)


def test_a_run_trains_and_keeps_each_clients_gradient_term(tmp_path):
    frame, rounds = run_table(tmp_path, "strategy=feddyn")
    assert_trains(rounds)
    norms = per_client(frame, "train", "gradient_term_norm")
    assert (norms.loc[1] == 0).all()
    assert (norms.loc[2] > 0).all()
