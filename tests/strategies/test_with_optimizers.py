"""How each algorithm's correction combines with momentum and Adam: FedNova's factor, SCAFFOLD's and FedProx's steps."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from fedsim.config import ConfigError
from fedsim.optimizers import SGD, Adam
from fedsim.plan import build_plan
from strategies.ditto import LAMBDA_KEY, PERSONAL_OPTIMIZER_KEY, DittoClient
from strategies.fednova import FACTOR_KEY, FedNova, FedNovaClient, normalizing_factor
from strategies.fedprox import ProximalClient
from strategies.scaffold import CLIENT_CONTROL_KEY, CONTROL_DELTA_KEY, SERVER_CONTROL_KEY, ScaffoldClient
from tests.conftest import compose_config
from tests.option_files import option_settings
from tests.strategies.helpers import (
    TAKE_ALL,
    client_reply,
    full_batch_gradient,
    grid,
    record,
    replies_to,
    run_client,
    toy_data,
    toy_model,
    train_config,
    values,
)


def sgd(**settings) -> SGD:
    return SGD(**option_settings("optimizer", "sgd", **settings))


def message(model, optimizer, lr=0.1, epochs=1, batch_size=12, **content) -> Message:
    config = train_config(lr=lr, epochs=epochs, batch_size=batch_size, optimizer=optimizer)
    for key, value in list(content.items()):
        if not isinstance(value, ArrayRecord):
            config[key] = content.pop(key)
    records = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config, **content})
    return Message(records, dst_node_id=1, message_type="train")


def at(weights: dict[str, torch.Tensor]):
    """toy_model() with ``weights``."""
    model = toy_model()
    model.load_state_dict(weights)
    return model


# --- FedNova ---------------------------------------------------------------------------------

FACTORS = [
    # (steps, momentum, dampening, nesterov, ||a||_1 by hand)
    (5, 0.0, 0.0, False, 5.0),  # plain SGD: one gradient per step
    (1, 0.9, 0.0, False, 1.0),  # one step moves by one gradient whatever the momentum
    # rho = 1/2: a_t = 1 + 1/2 + ... per step, (1.75, 1.5, 1); Wang et al.'s [3 - 0.5 (1 - 0.125) / 0.5] / 0.5
    (3, 0.5, 0.0, False, 4.25),
    # rho = 0.9, tau = 10: [10 - 0.9 (1 - 0.9^10) / 0.1] / 0.1 with 0.9^10 = 0.3486784401
    (10, 0.9, 0.0, False, (10 - 9 * (1 - 0.3486784401)) / 0.1),
    # dampening 1/2 halves every gradient after the first in the buffer: 1.75 + (1.5 + 1) / 2
    (3, 0.5, 0.5, False, 3.0),
    # Nesterov steps on g_t + rho b_t: 3 gradients plus rho times the heavy-ball sum 4.25
    (3, 0.5, 0.0, True, 3 + 0.5 * 4.25),
]


@pytest.mark.parametrize(("steps", "momentum", "dampening", "nesterov", "factor"), FACTORS)
def test_fednovas_factor_matches_the_hand_computed_one(steps, momentum, dampening, nesterov, factor):
    assert normalizing_factor(steps, momentum, dampening, nesterov) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(("steps", "momentum", "dampening", "nesterov", "_"), FACTORS)
def test_fednovas_factor_is_how_far_torchs_sgd_moves_under_a_constant_gradient(steps, momentum, dampening, nesterov, _):
    # with the same gradient g at every step, tau steps move the weight by lr ||a||_1 g
    weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=0.01, momentum=momentum, dampening=dampening, nesterov=nesterov)
    for _ in range(steps):
        weight.grad = torch.ones(1, dtype=torch.float64)
        optimizer.step()
    assert -weight.item() / 0.01 == pytest.approx(normalizing_factor(steps, momentum, dampening, nesterov), rel=1e-12)


def test_fednovas_client_reports_the_factor_of_its_steps_and_momentum():
    model = toy_model()
    # 3 epochs of one full batch: tau = 3 at momentum 1/2
    content = run_client(FedNovaClient, message(model, sgd(momentum=0.5), epochs=3), RecordDict(), toy_data(0), model)
    assert content["metrics"]["num-steps"] == 3
    assert content["metrics"][FACTOR_KEY] == pytest.approx(4.25)


def test_fednovas_server_normalizes_by_the_reported_factors():
    contents = [client_reply(record(w=[0, 4]), 1, num_steps=2), client_reply(record(w=[3, 2]), 3, num_steps=3)]
    contents[0]["metrics"][FACTOR_KEY] = 2.0  # d = (x - y) / 2 = [0.5, -1]
    contents[1]["metrics"][FACTOR_KEY] = 4.0  # 3 steps with momentum: d = [-0.5, 0]
    strategy = FedNova(weighting="examples", **TAKE_ALL)
    messages = list(strategy.configure_train(1, record(w=[1, 2]), ConfigRecord(), grid(2)))
    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    # p = [1/4, 3/4]; tau_eff = 2/4 + 12/4 = 3.5; sum p d = [-0.25, -0.25]; x - 3.5 * that
    np.testing.assert_allclose(values(arrays)["w"], [1.875, 2.875])


def test_fednova_refuses_adam_and_kept_momentum_before_training():
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config("strategy=fednova", "optimizer=adam"))
    assert str(raised.value) == (
        "strategy=fednova needs optimizer=sgd (with or without momentum), the optimizer its normalized averaging "
        "is derived for (got Adam)."
    )
    with pytest.raises(ConfigError, match=r"^strategy=fednova needs optimizer.keep_state=false with momentum: "):
        build_plan(compose_config("strategy=fednova", "optimizer.momentum=0.9", "optimizer.keep_state=true"))
    FedNovaClient.check_optimizer(sgd(keep_state=True))  # without momentum there is no state to keep
    FedNovaClient.check_optimizer(sgd(momentum=0.9, nesterov=True))


# --- SCAFFOLD, FedProx, Ditto -----------------------------------------------------------------


def test_scaffolds_correction_follows_the_momentum_step_outside_the_buffer():
    data, lr, rho = toy_data(1), 0.3, 0.5
    model = toy_model()
    x = {name: p.detach().clone() for name, p in model.named_parameters()}
    c = {name: torch.full_like(p, 0.5) for name, p in x.items()}
    c_i = {name: torch.linspace(-1, 1, p.numel()).reshape(p.shape) for name, p in x.items()}
    state = RecordDict({CLIENT_CONTROL_KEY: ArrayRecord(c_i)})

    content = run_client(
        ScaffoldClient, message(model, sgd(momentum=rho), lr=lr, epochs=2, **{SERVER_CONTROL_KEY: ArrayRecord(c)}),
        state, data, model,
    )
    # two full-batch steps: the optimizer's (buffer g1, then rho g1 + g2), each followed by -lr (c - c_i)
    g1 = full_batch_gradient(toy_model(), data)
    y1 = {name: x[name] - lr * g1[name] - lr * (c[name] - c_i[name]) for name in x}
    g2 = full_batch_gradient(at(y1), data)
    y2 = {name: y1[name] - lr * (rho * g1[name] + g2[name]) - lr * (c[name] - c_i[name]) for name in x}
    new_c_i = values(state[CLIENT_CONTROL_KEY])
    for name in x:
        np.testing.assert_allclose(values(content["arrays"])[name], y2[name].numpy(), atol=1e-6)
        # option II with K = 2 steps at the message's lr
        expected = c_i[name] - c[name] + (x[name] - y2[name]) / (2 * lr)
        np.testing.assert_allclose(new_c_i[name], expected.numpy(), atol=1e-5)
        np.testing.assert_allclose(values(content[CONTROL_DELTA_KEY])[name], (expected - c_i[name]).numpy(), atol=1e-5)


def test_fedproxs_term_enters_the_momentum_buffer_as_a_gradient():
    data, lr, rho, mu = toy_data(2), 0.2, 0.5, 0.7
    model = toy_model()
    x = {name: p.detach().clone() for name, p in model.named_parameters()}
    content = run_client(
        ProximalClient, message(model, sgd(momentum=rho), lr=lr, epochs=3, **{"proximal-mu": mu}),
        RecordDict(), data, model,
    )
    # three full-batch steps on the gradient of L + mu/2 ||w - x||^2 (zero proximal part at x);
    # the third tells a term inside the buffer from one applied after the step
    y, buffer = dict(x), {name: torch.zeros_like(t) for name, t in x.items()}
    for _ in range(3):
        gradient = {name: g + mu * (y[name] - x[name]) for name, g in full_batch_gradient(at(y), data).items()}
        buffer = {name: rho * buffer[name] + gradient[name] for name in x}
        y = {name: y[name] - lr * buffer[name] for name in x}
    for name in x:
        np.testing.assert_allclose(values(content["arrays"])[name], y[name].numpy(), atol=1e-6)


def test_ditto_keeps_one_optimizer_state_per_model():
    adam = Adam(**option_settings("optimizer", "adam", keep_state=True))
    state, model = RecordDict(), toy_model()
    run_client(DittoClient, message(model, adam, epochs=2, **{LAMBDA_KEY: 0.5}), state, toy_data(3), model)
    assert {"optimizer-state", PERSONAL_OPTIMIZER_KEY} <= set(state)
    kept = {key: values(state[key]) for key in ("optimizer-state", PERSONAL_OPTIMIZER_KEY)}
    assert all(float(step) == 2.0 for key in kept for name, step in kept[key].items() if name.endswith(".step"))
    # both start from the global model; from the second step on the proximal term moves the personal one apart
    personal, global_ = (kept[key]["0.exp_avg"] for key in (PERSONAL_OPTIMIZER_KEY, "optimizer-state"))
    assert not np.array_equal(personal, global_)
