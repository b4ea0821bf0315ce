"""Client halves of Flower's strategies: FedProx's proximal term and q-FedAvg's loss."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import strategy as flower
from torch.nn import functional as F

from fedsim.client_half import ClientHalf, client_half_class, client_half_path
from fedsim.data import ClientData
from fedsim.flower_internals import set_task_identity
from fedsim.models import LogisticRegression
from fedsim.plan import build_strategy
from fedsim.settings import RunSettings
from fedsim.training import train_locally
from strategies.fedavg import FedAvg
from strategies.fedopt import FedAdam
from strategies.fedprox import FedProx, ProximalClient
from strategies.qfedavg import FairLossClient, QFedAvg
from tests.conftest import compose_config
from tests.strategies.helpers import PLAIN_SGD

set_task_identity(run_id=7, node_id=0)


def toy_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 3, generator=generator)
    y = torch.randint(0, 4, (12,), generator=generator)
    model = LogisticRegression((3,), 4)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model, x, y


def message_for(model, **config) -> Message:
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord(config)})
    return Message(content, dst_node_id=1, message_type="train")


@pytest.mark.parametrize(
    ("option", "strategy_class", "half"),
    [
        ("fedprox", FedProx, ProximalClient),
        ("qfedavg", QFedAvg, FairLossClient),
        ("fedavg", FedAvg, ClientHalf),
        ("fedadam", FedAdam, ClientHalf),
    ],
)
def test_strategies_find_their_client_halves(option, strategy_class, half):
    # the strategy the option builds names its client half in every message; the ClientApp loads it from there
    cfg = compose_config(f"strategy={option}")
    strategy = build_strategy(cfg.strategy, RunSettings.from_config(cfg))
    assert type(strategy) is strategy_class
    assert client_half_class(client_half_path(strategy)) is half
    assert getattr(strategy_class, "client_half", ClientHalf) is half


def test_fedsims_fedprox_and_qfedavg_are_flowers_with_their_client_halves():
    assert issubclass(FedProx, flower.FedProx) and issubclass(QFedAvg, flower.QFedAvg)
    assert issubclass(FedAdam, flower.FedAdam)
    assert all(issubclass(s, flower.FedAvg) for s in (FedProx, QFedAvg, FedAdam))
    assert client_half_path(FedProx(proximal_mu=0.1, weighting="examples")) == "strategies.fedprox.ProximalClient"
    assert client_half_path(QFedAvg(q=0.1, client_learning_rate=0.05, weighting="uniform")) == "strategies.qfedavg.FairLossClient"


def test_proximal_training_equals_sgd_on_the_loss_plus_the_proximal_term():
    mu, lr = 0.7, 0.1
    model, x, y = toy_problem()
    global_weights = [p.detach().clone() for p in model.parameters()]
    half = ProximalClient(message_for(model, **{"proximal-mu": mu}), RecordDict(), ClientData(x, y, x, y), seed=0)
    half.load(model)
    half.start(model)
    train_locally(
        model, x, y, epochs=3, batch_size=12, lr=lr, optimizer=PLAIN_SGD, seed=0, correct_gradients=half.correct_gradients
    )

    reference, _, _ = toy_problem()
    for _ in range(3):  # full batch: three explicit steps of the FedProx objective
        loss = F.cross_entropy(reference(x), y)
        loss = loss + mu / 2 * sum(((p - w) ** 2).sum() for p, w in zip(reference.parameters(), global_weights))
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads):
                p -= lr * g
    for trained, expected in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(trained, expected, rtol=1e-6, atol=1e-6)


def test_proximal_term_with_mu_zero_is_plain_training():
    model, x, y = toy_problem()
    half = ProximalClient(message_for(model, **{"proximal-mu": 0.0}), RecordDict(), ClientData(x, y, x, y), seed=0)
    half.load(model)
    half.start(model)
    train_locally(
        model, x, y, epochs=2, batch_size=4, lr=0.1, optimizer=PLAIN_SGD, seed=3, correct_gradients=half.correct_gradients
    )
    plain, _, _ = toy_problem()
    train_locally(plain, x, y, epochs=2, batch_size=4, lr=0.1, optimizer=PLAIN_SGD, seed=3)
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.equal(a, b)


def test_fair_loss_client_reports_the_global_models_loss_before_training():
    model, x, y = toy_problem()
    expected = F.cross_entropy(model(x), y).item()
    half = FairLossClient(message_for(model), RecordDict(), ClientData(x, y, x[:2], y[:2]), seed=0)
    half.load(model)
    assert abs(half.start(model)["train_loss"] - expected) < 1e-6
