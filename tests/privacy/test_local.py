"""Opacus DP-SGD on one client: its accountant across rounds, its weights, the models it refuses."""

import pytest
import torch
from flwr.app import RecordDict
from torch import nn

from fedsim.config import ConfigError
from fedsim.optimizers import SGD
from fedsim.privacy.local import DPSGD, batches_per_epoch, check_model, train_privately
from fedsim.training import train_locally
from tests.option_files import option_settings
from tests.privacy.reference import reference_epsilon

PLAIN_SGD = SGD(**option_settings("optimizer", "sgd"))


def data(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=generator), torch.randint(0, 3, (n,), generator=generator)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def private_round(net, state, *, noise=1.0, clip=1.0, batch_size=10, epochs=2, seed=1, **extra):
    x, y = data()
    return train_privately(
        net, x, y, epochs=epochs, batch_size=batch_size, lr=0.1, optimizer=PLAIN_SGD, seed=seed, state=state,
        dp=DPSGD(noise_multiplier=noise, max_grad_norm=clip, delta=1e-5, accountant="rdp", secure_mode=False), **extra,
    )


def test_without_noise_or_clipping_full_batch_dp_sgd_is_gradient_descent():
    # With a batch as large as the data, Poisson sampling takes every example every step.
    x, y = data()
    plain, private = model(), model()
    train_locally(plain, x, y, epochs=3, batch_size=30, lr=0.1, optimizer=PLAIN_SGD, seed=1)
    metrics = private_round(private, RecordDict(), noise=0.0, clip=1e6, batch_size=30, epochs=3)
    assert metrics["num-steps"] == 3
    for a, b in zip(plain.state_dict().values(), private.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_augmentation_transforms_every_sampled_batch():
    # Full batches, no noise, no clipping: DP-SGD with an augmentation is gradient descent on
    # the augmented inputs (here a deterministic one, the features reversed, so the
    # expected weights come from plain training on reversed data).
    x, y = data()
    plain, private = model(), model()
    train_locally(plain, x.flip(-1), y, epochs=3, batch_size=30, lr=0.1, optimizer=PLAIN_SGD, seed=1)
    seen = []

    def reverse(inputs, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(len(inputs))
        return inputs.flip(-1)

    private_round(private, RecordDict(), noise=0.0, clip=1e6, batch_size=30, epochs=3, augment=reverse)
    assert seen == [30, 30, 30]
    for a, b in zip(plain.state_dict().values(), private.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_client_epsilon_is_cumulative_over_rounds():
    state, net = RecordDict(), model()
    first = private_round(net, state, seed=1)["epsilon"]
    second = private_round(net, state, seed=2)["epsilon"]
    k = batches_per_epoch(30, 10)
    assert first == pytest.approx(reference_epsilon([(1.0, 1 / k, 2 * k)], 1e-5, "rdp"), rel=0.01)
    assert second == pytest.approx(reference_epsilon([(1.0, 1 / k, 4 * k)], 1e-5, "rdp"), rel=0.01)


def test_plain_weights_come_back_and_the_seed_decides_the_noise():
    a, b = model(), model()
    private_round(a, RecordDict(), seed=5)
    private_round(b, RecordDict(), seed=5)
    assert list(a.state_dict()) == list(model().state_dict())
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_the_gradient_correction_is_applied_after_the_noise():
    # A correction that cancels the noised gradient leaves the weights where they were.
    net, before = model(), model()
    private_round(net, RecordDict(), correct_gradients=lambda params, grads: [g * 0 for g in grads])
    for a, b in zip(net.state_dict().values(), before.state_dict().values()):
        assert torch.equal(a, b)


def test_a_model_with_batch_norm_is_refused():
    with pytest.raises(ConfigError, match="privacy=local_dp cannot train model Net: .*BatchNorm"):
        check_model(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8)), "Net")
    check_model(model(), "MLP")
