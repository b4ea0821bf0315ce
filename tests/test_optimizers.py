"""Client optimizers: hand-computed steps, state kept between rounds, the message round trip, bad values, runs."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, RecordDict

from fedsim.config import ConfigError
from fedsim.instantiate import build
from fedsim.models import LogisticRegression
from fedsim.optimizers import SGD, Adam, AdamW, ClientOptimizer
from fedsim.plan import build_plan
from fedsim.privacy.local import DPSGD, train_privately
from fedsim.training import train_locally
from tests.conftest import compose_config
from tests.option_files import option_node, option_settings
from tests.strategies.helpers import assert_trains, run_table


def sgd(**settings) -> SGD:
    return SGD(**option_settings("optimizer", "sgd", **settings))


def adam(**settings) -> Adam:
    return Adam(**option_settings("optimizer", "adam", **settings))


# One example x = 2 of class 0, a two-class linear model starting at zero: every step's
# gradient is (p - onehot(0)) times (x, 1), with p the softmax of the logits.
X, Y = torch.tensor([[2.0]]), torch.tensor([0])


def zero_model() -> LogisticRegression:
    model = LogisticRegression((1,), 2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return model


def weights(model) -> tuple[np.ndarray, np.ndarray]:
    return model.linear.weight.detach().numpy()[:, 0].copy(), model.linear.bias.detach().numpy().copy()


def steps(model, optimizer, lr, epochs, state=None, seed=0):
    return train_locally(model, X, Y, epochs=epochs, batch_size=1, lr=lr, optimizer=optimizer, seed=seed, state=state)


# Step 1 at zero: p = (1/2, 1/2), gradient of the weight (-1, 1), of the bias (-1/2, 1/2).
G1_W, G1_B = np.array([-1.0, 1.0]), np.array([-0.5, 0.5])


def second_gradient(w, b):
    """The gradient at (w, b) (each entry's second component is minus the first)."""
    p0 = 1 / (1 + math.exp(-((w[0] - w[1]) * 2 + (b[0] - b[1]))))  # softmax of two logits
    return np.array([(p0 - 1) * 2, (1 - p0) * 2]), np.array([p0 - 1, 1 - p0])


def test_two_steps_of_sgd_with_momentum_match_the_hand_computed_ones():
    model, lr, rho = zero_model(), 0.1, 0.5
    metrics = steps(model, sgd(momentum=rho), lr, epochs=2)
    # step 1: buffer g1; w1 = -lr g1 = (0.1, -0.1), b1 = (0.05, -0.05)
    w1, b1 = -lr * G1_W, -lr * G1_B
    # step 2: logits (0.25, -0.25), p0 = sigmoid(0.5); buffer rho g1 + g2
    g2_w, g2_b = second_gradient(w1, b1)
    assert g2_w[0] == pytest.approx(2 * (1 / (1 + math.exp(-0.5)) - 1))
    w2, b2 = w1 - lr * (rho * G1_W + g2_w), b1 - lr * (rho * G1_B + g2_b)
    np.testing.assert_allclose(weights(model)[0], w2, rtol=0, atol=1e-7)  # (0.2255081, -0.2255081)
    np.testing.assert_allclose(weights(model)[1], b2, rtol=0, atol=1e-7)
    assert metrics["num-steps"] == 2


def test_nesterov_and_weight_decay_steps_match_the_hand_computed_ones():
    model, lr, rho, decay = zero_model(), 0.1, 0.5, 0.2
    steps(model, sgd(momentum=rho, nesterov=True, weight_decay=decay), lr, epochs=2)
    # step 1 at zero (no decay yet): buffer g1, step g1 + rho g1
    w1, b1 = -lr * (1 + rho) * G1_W, -lr * (1 + rho) * G1_B
    g2_w, g2_b = second_gradient(w1, b1)
    g2_w, g2_b = g2_w + decay * w1, g2_b + decay * b1  # weight decay joins the gradient
    buffer_w, buffer_b = rho * G1_W + g2_w, rho * G1_B + g2_b
    np.testing.assert_allclose(weights(model)[0], w1 - lr * (g2_w + rho * buffer_w), rtol=0, atol=1e-7)
    np.testing.assert_allclose(weights(model)[1], b1 - lr * (g2_b + rho * buffer_b), rtol=0, atol=1e-7)


@pytest.mark.parametrize("optimizer_class", [Adam, AdamW])
def test_the_first_adam_step_moves_every_weight_by_lr_against_its_gradients_sign(optimizer_class):
    # m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected: m / sqrt(v) = sign(g); AdamW's decay of zero weights is zero
    model = zero_model()
    steps(model, optimizer_class(**option_settings("optimizer", optimizer_class.__name__.lower())), 0.01, epochs=1)
    np.testing.assert_allclose(weights(model)[0], -0.01 * np.sign(G1_W), rtol=1e-6)
    np.testing.assert_allclose(weights(model)[1], -0.01 * np.sign(G1_B), rtol=1e-6)


@pytest.mark.parametrize("optimizer", [sgd(momentum=0.5), sgd(momentum=0.9, nesterov=True), adam()], ids=str)
def test_kept_state_makes_two_rounds_of_one_step_equal_one_round_of_two(optimizer):
    kept = dataclasses.replace(optimizer, keep_state=True)
    whole = zero_model()
    steps(whole, optimizer, 0.1, epochs=2)
    split, state = zero_model(), RecordDict()
    steps(split, kept, 0.1, epochs=1, state=state)
    steps(split, kept, 0.1, epochs=1, state=state)
    for a, b in zip(weights(whole), weights(split)):
        np.testing.assert_array_equal(a, b)
    fresh, state = zero_model(), RecordDict()  # without keep_state the second round starts afresh
    steps(fresh, optimizer, 0.1, epochs=1, state=state)
    steps(fresh, optimizer, 0.1, epochs=1, state=state)
    assert not np.array_equal(weights(whole)[0], weights(fresh)[0])
    assert len(state) == 0


def test_a_kept_momentum_buffer_steps_at_the_new_rounds_learning_rate():
    model, state, rho = zero_model(), RecordDict(), 0.5
    optimizer = sgd(momentum=rho, keep_state=True)
    steps(model, optimizer, 0.1, epochs=1, state=state)
    steps(model, optimizer, 0.05, epochs=1, state=state)  # the schedule halved the rate
    w1, b1 = -0.1 * G1_W, -0.1 * G1_B
    g2_w, g2_b = second_gradient(w1, b1)
    np.testing.assert_allclose(weights(model)[0], w1 - 0.05 * (rho * G1_W + g2_w), rtol=0, atol=1e-7)
    np.testing.assert_allclose(weights(model)[1], b1 - 0.05 * (rho * G1_B + g2_b), rtol=0, atol=1e-7)


def test_local_dp_wraps_the_same_optimizer():
    # no noise, no clipping, one full Poisson batch per step (every example, rate 1): Adam's own steps
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 6, generator=generator), torch.randint(0, 3, (30,), generator=generator)
    plain, private = LogisticRegression((6,), 3), LogisticRegression((6,), 3)
    private.load_state_dict(plain.state_dict())
    initial = plain.linear.weight.detach().clone()
    train_locally(plain, x, y, epochs=3, batch_size=30, lr=0.05, optimizer=adam(), seed=1)
    dp = DPSGD(noise_multiplier=0.0, max_grad_norm=1e6, delta=1e-5, accountant="rdp", secure_mode=False)
    train_privately(
        private, x, y, epochs=3, batch_size=30, lr=0.05, optimizer=adam(), seed=1, state=RecordDict(), dp=dp
    )
    for a, b in zip(plain.state_dict().values(), private.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert not torch.equal(plain.linear.weight, initial)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_message_carries_the_optimizer_and_its_settings(name):
    optimizer = build(option_node("optimizer", name))
    config = ConfigRecord(optimizer.to_config())
    assert config["optimizer"] == f"fedsim.optimizers.{type(optimizer).__name__}"
    assert ClientOptimizer.from_config(config) == optimizer


BAD_VALUES = [
    ("sgd", {"momentum": 1.0}, "optimizer.momentum must be in [0, 1) (got 1.0)."),
    ("sgd", {"momentum": -0.1}, "optimizer.momentum must be in [0, 1) (got -0.1)."),
    ("sgd", {"dampening": 1.5}, "optimizer.dampening must be in [0, 1) (got 1.5)."),
    ("sgd", {"nesterov": True}, "optimizer.nesterov=true needs optimizer.momentum greater than 0 (got 0.0)."),
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "optimizer.nesterov=true needs optimizer.dampening=0 (got 0.1)."),
    ("sgd", {"weight_decay": -1e-4}, "optimizer.weight_decay must be at least 0 and finite (got -0.0001)."),
    ("sgd", {"weight_decay": math.inf}, "optimizer.weight_decay must be at least 0 and finite (got inf)."),
    ("adam", {"betas": [0.9, 1.0]}, "optimizer.betas must be two values in [0, 1) (got [0.9, 1.0])."),
    ("adam", {"betas": [-0.1, 0.999]}, "optimizer.betas must be two values in [0, 1) (got [-0.1, 0.999])."),
    ("adam", {"betas": [0.9]}, "optimizer.betas must be two values in [0, 1) (got [0.9])."),
    ("adam", {"eps": 0.0}, "optimizer.eps must be greater than 0 and finite (got 0.0)."),
    ("adam", {"weight_decay": -0.5}, "optimizer.weight_decay must be at least 0 and finite (got -0.5)."),
    ("adamw", {"eps": -1e-8}, "optimizer.eps must be greater than 0 and finite (got -1e-08)."),
    ("adamw", {"betas": [0.9, 0.999, 0.9]}, "optimizer.betas must be two values in [0, 1) (got [0.9, 0.999, 0.9])."),
]


@pytest.mark.parametrize(("name", "settings", "message"), BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_a_bad_setting_is_one_sentence(name, settings, message):
    node = option_node("optimizer", name)
    for key, value in settings.items():
        node[key] = value
    with pytest.raises(ConfigError) as raised:
        build(node)
    assert str(raised.value) == message


def test_a_bad_setting_stops_the_plan_before_training():
    with pytest.raises(ConfigError, match=r"^optimizer.momentum must be in \[0, 1\) \(got 1.5\).$"):
        build_plan(compose_config("optimizer.momentum=1.5"))


@pytest.mark.parametrize(
    "overrides",
    [["optimizer.momentum=0.9", "optimizer.weight_decay=1e-5"], ["optimizer=adam", "client.lr=0.005"],
     ["optimizer=adamw", "optimizer.keep_state=true", "client.lr=0.005"]],
    ids=" ".join,
)
def test_a_run_trains_with_every_optimizer(tmp_path, overrides):
    _, rounds = run_table(tmp_path, *overrides)
    assert_trains(rounds)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSprop(ClientOptimizer):
    """An optimizer of a user's own: one class (and one YAML naming it)."""

    alpha: float
    torch_class = torch.optim.RMSprop


def test_an_optimizer_of_your_own_travels_in_the_message_and_trains():
    config = ConfigRecord(RMSprop(alpha=0.9, keep_state=False).to_config())
    assert config["optimizer"] == "tests.test_optimizers.RMSprop" and config["optimizer-alpha"] == 0.9
    model = zero_model()
    steps(model, ClientOptimizer.from_config(config), 0.01, epochs=1)
    # the first step divides g by sqrt((1 - alpha) g^2) = |g| sqrt(0.1): lr sign(g) / sqrt(0.1)
    np.testing.assert_allclose(weights(model)[0], -0.01 * np.sign(G1_W) / math.sqrt(0.1), rtol=1e-5)
