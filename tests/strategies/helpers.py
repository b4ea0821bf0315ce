"""What the strategy tests share: tiny models and data, messages, and one client round run by hand."""

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch import nn

from fedsim.client_half import ClientHalf
from fedsim.data import ClientData
from fedsim.flower_internals import set_task_identity
from fedsim.models import LogisticRegression
from fedsim.optimizers import SGD, ClientOptimizer
from fedsim.sampling import NodeSubsetGrid
from tests.option_files import option_settings

# Messages read the sender's identity from here (fedsim's engines set it the same way).
set_task_identity(run_id=7, node_id=0)


class SmallBatchNormNet(nn.Module):
    """A 3x3 convolution with BatchNorm, then a linear layer: the smallest model FedBN applies to."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv = nn.Conv2d(channels, 4, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * height * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).flatten(1))


def toy_data(seed: int, n: int = 12, d: int = 3, classes: int = 4) -> ClientData:
    """A client with ``n`` random examples, used for both training and evaluation."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return ClientData(x, y, x, y)


def toy_model(seed: int = 0, d: int = 3, classes: int = 4) -> LogisticRegression:
    """Logistic regression with random (not zero) weights drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    model = LogisticRegression((d,), classes)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model


def record(**arrays: list[float]) -> ArrayRecord:
    """An ArrayRecord of small float32 arrays given as lists."""
    return ArrayRecord({key: Array(np.asarray(values, dtype=np.float32)) for key, values in arrays.items()})


def values(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {key: array.numpy() for key, array in record.items()}


def grid(num_nodes: int) -> NodeSubsetGrid:
    """A grid listing nodes 1..num_nodes; enough for a strategy's configure_* methods."""
    return NodeSubsetGrid(None, list(range(1, num_nodes + 1)))


# The default optimizer, as conf/optimizer/sgd.yaml states it: plain SGD.
PLAIN_SGD = SGD(**option_settings("optimizer", "sgd"))


def train_config(
    lr: float = 0.1, epochs: int = 1, batch_size: int = 12, optimizer: ClientOptimizer = PLAIN_SGD
) -> ConfigRecord:
    recipe = {"server-round": 1, "lr": lr, "local-epochs": epochs, "batch-size": batch_size}
    return ConfigRecord(recipe | optimizer.to_config())


def reply(instruction: Message, content: RecordDict) -> Message:
    return Message(content, reply_to=instruction)


def client_reply(arrays: ArrayRecord, num_examples: int, num_steps: int = 1, **extra: ArrayRecord) -> RecordDict:
    """The content of a training reply as fedsim's clients send it."""
    metrics = MetricRecord({"loss": 1.0, "num-steps": num_steps, "num-examples": num_examples})
    return RecordDict({"arrays": arrays, **extra, "metrics": metrics})


def replies_to(messages: list[Message], contents: list[RecordDict]) -> list[Message]:
    return [reply(message, content) for message, content in zip(messages, contents)]


def run_client(
    half_class: type[ClientHalf], message: Message, state: RecordDict, data: ClientData, model: nn.Module, seed: int = 0
) -> RecordDict:
    """One training message handled as fedsim's ClientApp does: load, start, SGD, finish."""
    half = half_class(message, state, data, seed)
    half.load(model)
    metrics = half.start(model)
    metrics |= half.train(model, half.correct_gradients, half.correct_weights)
    metrics["num-examples"] = len(data.train_y)
    extra = half.finish(model, metrics)
    return RecordDict({"arrays": ArrayRecord(model.state_dict()), **extra, "metrics": MetricRecord(metrics)})


def full_batch_gradient(model: nn.Module, data: ClientData) -> dict[str, torch.Tensor]:
    """The gradient of the mean cross-entropy over all of ``data``'s training examples."""
    loss = nn.functional.cross_entropy(model(data.train_x), data.train_y)
    names = [name for name, p in model.named_parameters()]
    return dict(zip(names, torch.autograd.grad(loss, list(model.parameters()))))


def run_table(run_dir, *overrides: str):
    """Run ``fedsim num_rounds=3 OVERRIDES`` (tiny) into ``run_dir``: its metrics, all rows and one row per round."""
    from fedsim.results import load, round_table
    from fedsim.runner import run
    from tests.conftest import compose_config

    run(compose_config("num_rounds=3", *overrides), run_dir, quiet=True)
    frame = load(run_dir)
    return frame, round_table(frame)


def assert_trains(rounds) -> None:
    """The global model beats chance (0.1 on digits' 10 classes) twice over and its test loss fell."""
    assert rounds["centralized_accuracy"].iloc[-1] > 0.2
    assert rounds["centralized_loss"].iloc[-1] < rounds["centralized_loss"].iloc[0]


def per_client(frame, stage: str, metric: str):
    """One column per client, one row per round, of a metric the clients reported."""
    rows = frame[(frame["stage"] == stage) & frame["client"].notna() & (frame["metric"] == metric)]
    return rows.pivot(index="round", columns="client", values="value")


# How fedsim builds every strategy: it takes whichever nodes it is shown (see fedsim.plan.build_strategy).
TAKE_ALL = {"min_train_nodes": 1, "min_evaluate_nodes": 1, "min_available_nodes": 1}
