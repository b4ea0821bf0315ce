"""Tests for the local SGD loop and evaluation, against numpy computations."""

import math

import numpy as np
import pytest
import torch

from fedsim.models import LogisticRegression
from fedsim.optimizers import SGD
from fedsim.training import evaluate, train_locally
from tests.option_files import option_settings

PLAIN_SGD = SGD(**option_settings("optimizer", "sgd"))  # the default: no momentum, no weight decay


def make_data(n: int = 23, d: int = 5, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    return torch.from_numpy(x), torch.from_numpy(y)


def make_model(d: int = 5, c: int = 3, seed: int = 0) -> LogisticRegression:
    torch.manual_seed(seed)
    return LogisticRegression((d,), c)


def params(model) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.parameters()]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def numpy_loss_and_accuracy(w, b, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the linear model (w, b), in float64."""
    logits = x.astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float64)
    p = softmax(logits)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    accuracy = np.mean(logits.argmax(axis=1) == y)
    return float(loss), float(accuracy)


# --- train_locally -------------------------------------------------------------------------


def run(seed: int, model_seed: int = 0):
    x, y = make_data()
    model = make_model(seed=model_seed)
    metrics = train_locally(model, x, y, epochs=2, batch_size=4, lr=0.1, optimizer=PLAIN_SGD, seed=seed)
    return model, metrics


def test_same_seed_gives_identical_weights_and_metrics():
    a, metrics_a = run(seed=7)
    b, metrics_b = run(seed=7)
    for pa, pb in zip(params(a), params(b)):
        np.testing.assert_array_equal(pa, pb)
    assert metrics_a == metrics_b


def test_other_seed_gives_other_data_order_and_weights():
    a, metrics_a = run(seed=7)
    b, metrics_b = run(seed=8)
    assert any(not np.array_equal(pa, pb) for pa, pb in zip(params(a), params(b)))
    assert metrics_a["loss"] != metrics_b["loss"]


@pytest.mark.parametrize("batch_size", [23, 100])
def test_one_full_batch_step_equals_the_numpy_gradient_step(batch_size):
    x, y = make_data()
    n, lr = len(y), 0.3
    model = make_model()
    w0, b0 = (p.astype(np.float64) for p in params(model))
    metrics = train_locally(model, x, y, epochs=1, batch_size=batch_size, lr=lr, optimizer=PLAIN_SGD, seed=0)

    xn = x.numpy().astype(np.float64)
    onehot = np.eye(3)[y.numpy()]
    residual = softmax(xn @ w0.T + b0) - onehot  # (n, c)
    w_expected = w0 - lr * residual.T @ xn / n
    b_expected = b0 - lr * residual.sum(axis=0) / n

    w1, b1 = params(model)
    np.testing.assert_allclose(w1, w_expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b1, b_expected, rtol=0, atol=1e-6)
    # the returned loss and accuracy are those of the weights before the step
    loss, accuracy = numpy_loss_and_accuracy(w0, b0, x.numpy(), y.numpy())
    assert metrics["loss"] == pytest.approx(loss, abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["num-steps"] == 1


@pytest.mark.parametrize(
    ("n", "epochs", "batch_size"),
    [(10, 3, 3), (10, 1, 10), (10, 2, 1), (23, 2, 5), (7, 4, 8)],
)
def test_num_steps_is_epochs_times_batches_per_epoch(n, epochs, batch_size):
    x, y = make_data(n=n)
    metrics = train_locally(
        make_model(), x, y, epochs=epochs, batch_size=batch_size, lr=0.01, optimizer=PLAIN_SGD, seed=0
    )
    assert metrics["num-steps"] == epochs * math.ceil(n / batch_size)


def test_loss_and_accuracy_average_over_every_example_seen():
    # with lr=0 the weights never move, so every batch is scored by the initial model and
    # the example-weighted means over all epochs equal that model's loss and accuracy
    x, y = make_data(n=10)
    model = make_model()
    w0, b0 = params(model)
    metrics = train_locally(model, x, y, epochs=3, batch_size=3, lr=0.0, optimizer=PLAIN_SGD, seed=1)
    loss, accuracy = numpy_loss_and_accuracy(w0, b0, x.numpy(), y.numpy())
    assert metrics["loss"] == pytest.approx(loss, abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["num-steps"] == 12
    for before, after in zip((w0, b0), params(model)):
        np.testing.assert_array_equal(before, after)


def test_training_on_separable_data_reaches_full_accuracy():
    x = torch.tensor([[2.0, 0.0], [3.0, 0.5], [-2.0, 0.1], [-3.0, -0.5]])
    y = torch.tensor([1, 1, 0, 0])
    model = make_model(d=2, c=2)
    train_locally(model, x, y, epochs=50, batch_size=2, lr=0.5, optimizer=PLAIN_SGD, seed=0)
    assert evaluate(model, x, y)["accuracy"] == 1.0


# --- evaluate ----------------------------------------------------------------------------


def fixed_model() -> LogisticRegression:
    """2 inputs, 3 classes: logits = (x0, x1, 0) + (0, 0, log 2)."""
    model = LogisticRegression((2,), 3)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        model.linear.bias.copy_(torch.tensor([0.0, 0.0, math.log(2.0)]))
    return model


# Hand-computed, with logits (x0, x1, log 2):
#   x=(0, 0), y=0: softmax = (1, 1, 2)/4       -> CE = log 4,          argmax 2 (wrong)
#   x=(log 3, 0), y=0: exp = (3, 1, 2)/6      -> CE = log 6 - log 3,  argmax 0 (right)
#   x=(0, log 4), y=1: exp = (1, 4, 2)/7      -> CE = log 7 - log 4,  argmax 1 (right)
#   x=(0, 0), y=2: softmax = (1, 1, 2)/4       -> CE = log 2,          argmax 2 (right)
EVAL_X = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(4.0)], [0.0, 0.0]])
EVAL_Y = torch.tensor([0, 0, 1, 2])
EVAL_LOSS = (math.log(4) + math.log(6 / 3) + math.log(7 / 4) + math.log(2)) / 4
EVAL_ACCURACY = 3 / 4


@pytest.mark.parametrize("batch_size", [1024, 3, 1])
def test_evaluate_returns_hand_computed_loss_and_accuracy(batch_size):
    metrics = evaluate(fixed_model(), EVAL_X, EVAL_Y, batch_size=batch_size)
    assert metrics["loss"] == pytest.approx(EVAL_LOSS, abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(EVAL_ACCURACY)


def test_evaluate_does_not_change_the_model():
    model = fixed_model()
    before = params(model)
    evaluate(model, EVAL_X, EVAL_Y)
    for a, b in zip(before, params(model)):
        np.testing.assert_array_equal(a, b)
