"""fedsim extended from a package outside it, with no edit to fedsim: a strategy with its client half,
a model and a tracker, each one module plus one YAML in a config folder of its own.

The package ``myfl`` and its ``conf`` folder are written into a temporary folder; Hydra
finds the YAML through ``hydra.searchpath`` and Python the modules through ``sys.path``
(``PYTHONPATH`` for the ``fedsim`` command).
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import fedsim.runner
from fedsim.compose import compose
from fedsim.config import ConfigError
from fedsim.results import load, round_table
from tests.conftest import TINY

PACKAGE = {
    "myfl/__init__.py": '"""A federated-learning package built on fedsim, outside it."""\n',
    "myfl/strategies.py": '''
        """Scaled gradients: FedAvg whose clients multiply every minibatch gradient by a factor the server sends.

        With plain SGD, a scale s and learning rate lr train exactly as FedAvg with
        learning rate s * lr: the hand-checkable effect of the client half.
        """

        from flwr.serverapp.strategy import FedAvg

        from fedsim.client_half import ClientHalf
        from fedsim.config import require


        class ScaledClient(ClientHalf):
            """Multiplies each gradient by the server's ``gradient-scale`` and reports the scale it used."""

            def start(self, model):
                self.scale = float(self.config["gradient-scale"])
                return {"gradient-scale": self.scale}

            def correct_gradients(self, parameters, gradients):
                return [self.scale * gradient for gradient in gradients]


        class ScaledGradients(FedAvg):
            """FedAvg that sends ``gradient-scale`` to its clients (ScaledClient)."""

            client_half = ScaledClient

            def __init__(self, *, gradient_scale: float, **fedavg_args) -> None:
                require(gradient_scale > 0, f"strategy.gradient_scale must be greater than 0 (got {gradient_scale}).")
                super().__init__(**fedavg_args)
                self.gradient_scale = gradient_scale

            def configure_train(self, server_round, arrays, config, grid):
                config["gradient-scale"] = self.gradient_scale
                return super().configure_train(server_round, arrays, config, grid)
    ''',
    "myfl/models.py": '''
        """One tanh hidden layer on the flattened input."""

        import math

        import torch
        from torch import nn

        from fedsim.config import require


        class OneHidden(nn.Module):
            def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, hidden: int) -> None:
                require(hidden >= 1, f"model.hidden must be at least 1 (got {hidden}).")
                super().__init__()
                self.hidden = nn.Linear(math.prod(input_shape), hidden)
                self.out = nn.Linear(hidden, num_classes)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.out(torch.tanh(self.hidden(x.flatten(1))))
    ''',
    "myfl/tracker.py": '''
        """A tracker: each round's centralized accuracy as one JSON line in the run folder."""

        import json
        from pathlib import Path

        from fedsim.callbacks import Callback
        from fedsim.config import require


        class AccuracyLog(Callback):
            def __init__(self, filename: str) -> None:
                require(bool(filename.strip()), "callbacks.accuracy_log.filename must name a file (got an empty string).")
                self.filename = filename
                self.path = None

            def on_run_start(self, run):
                self.path = Path(run.run_dir) / self.filename
                self.path.write_text("")

            def on_round_end(self, server_round, rows, history):
                line = {"round": server_round, "accuracy": history.rounds[server_round]["centralized_accuracy"]}
                with self.path.open("a") as file:
                    file.write(json.dumps(line) + "\\n")
    ''',
    "conf/strategy/scaled_gradients.yaml": """
        # FedAvg whose clients scale every gradient by gradient_scale (myfl.strategies).
        _target_: myfl.strategies.ScaledGradients
        gradient_scale: 0.5
    """,
    "conf/model/one_hidden.yaml": """
        # One tanh hidden layer (myfl.models).
        _target_: myfl.models.OneHidden
        hidden: 7
    """,
    "conf/callbacks/accuracy_log.yaml": """
        # Each round's centralized accuracy as a JSON line in the run folder (myfl.tracker).
        accuracy_log:
          _target_: myfl.tracker.AccuracyLog
          filename: accuracy.jsonl
    """,
}
OPTIONS = ["strategy=scaled_gradients", "model=one_hidden", "+callbacks=accuracy_log"]
NUM_CLIENTS = 4
# OneHidden with 7 units on digits (8x8 inputs, 10 classes), counted by hand.
SHAPES = {"hidden.weight": (7, 64), "hidden.bias": (7,), "out.weight": (10, 7), "out.bias": (10,)}
NUM_PARAMETERS = 64 * 7 + 7 + 7 * 10 + 10  # 535


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """The folder holding the package ``myfl`` and its ``conf``, importable while this module's tests run."""
    root = tmp_path_factory.mktemp("outside")
    for name, text in PACKAGE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        yield root
    for module in [name for name in sys.modules if name == "myfl" or name.startswith("myfl.")]:
        del sys.modules[module]


def searchpath(root: Path) -> str:
    return f"hydra.searchpath=['file://{root / 'conf'}']"


def model_shapes(run_dir: Path) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in torch.load(run_dir / "model.pt").items()}


def test_an_outside_strategy_model_and_tracker_run_from_their_own_yaml(outside, tmp_path):
    tiny = [*TINY, f"num_clients={NUM_CLIENTS}"]
    cfg, choices = compose(*tiny, searchpath(outside), *OPTIONS, "client.lr=0.1")
    assert choices["strategy"] == "scaled_gradients" and choices["model"] == "one_hidden"
    assert choices["callbacks"] == "progress,metrics_csv,fairness,accuracy_log"
    fedsim.runner.run(cfg, tmp_path / "scaled", choices, quiet=True)
    # The independent computation: plain FedAvg with the learning rate scaled instead (0.5 * 0.1).
    reference, reference_choices = compose(*tiny, searchpath(outside), "model=one_hidden", "client.lr=0.05")
    fedsim.runner.run(reference, tmp_path / "reference", reference_choices, quiet=True)

    frame = load(tmp_path / "scaled")
    table = round_table(frame)
    assert list(table.index) == [0, 1, 2]
    # The client half ran on every client in every round, with the scale the server sent ...
    scales = frame[(frame["stage"] == "train") & (frame["metric"] == "gradient-scale") & frame["client"].notna()]
    assert sorted(scales["round"]) == [1] * NUM_CLIENTS + [2] * NUM_CLIENTS
    assert set(scales["value"]) == {0.5}
    assert list(table["train_gradient-scale"].dropna()) == [0.5, 0.5]
    # ... and scaled the gradients: the same model as FedAvg at half the learning rate.
    scaled_model = torch.load(tmp_path / "scaled" / "model.pt")
    reference_model = torch.load(tmp_path / "reference" / "model.pt")
    for key, tensor in scaled_model.items():
        torch.testing.assert_close(tensor, reference_model[key], rtol=0, atol=1e-6)
    reference_table = round_table(load(tmp_path / "reference"))
    assert list(table["centralized_accuracy"]) == list(reference_table["centralized_accuracy"])
    assert table["centralized_accuracy"].iloc[-1] > table["centralized_accuracy"].iloc[0]  # it did learn

    # The model was OneHidden(hidden=7): its saved weights and the bytes sent to each client.
    assert model_shapes(tmp_path / "scaled") == SHAPES
    assert sum(math.prod(shape) for shape in SHAPES.values()) == NUM_PARAMETERS
    assert list(table["system_train_bytes_down"].dropna()) == [NUM_CLIENTS * NUM_PARAMETERS * 4.0] * 2

    # The tracker wrote one line per round (round 0: the initial model) with metrics.csv's values.
    lines = [json.loads(line) for line in (tmp_path / "scaled" / "accuracy.jsonl").read_text().splitlines()]
    assert lines == [{"round": r, "accuracy": value} for r, value in table["centralized_accuracy"].items()]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategy.gradient_scale=0", "strategy.gradient_scale must be greater than 0 (got 0)."),
        ("strategy.gradient_scale=big", "strategy.gradient_scale must be a number (got 'big')."),
        ("+strategy.gradient_scal=1", "strategy.gradient_scal is not a setting of myfl.strategies.ScaledGradients; "),
        ("model.hidden=0", "model.hidden must be at least 1 (got 0)."),
        ("callbacks.accuracy_log.filename=''", "callbacks.accuracy_log.filename must name a file (got an empty string)."),
    ],
)
def test_outside_options_are_checked_as_fedsim_own_are(outside, tmp_path, override, message):
    cfg, choices = compose(*TINY, searchpath(outside), *OPTIONS, override)
    with pytest.raises(ConfigError) as raised:
        fedsim.runner.run(cfg, tmp_path, choices, quiet=True)
    assert str(raised.value).startswith(message)


def test_the_fedsim_command_runs_the_outside_options(outside, tmp_path):
    run_dir = tmp_path / "cli run"
    command = [
        str(Path(sys.executable).parent / "fedsim"), searchpath(outside), *OPTIONS, f"num_clients={NUM_CLIENTS}",
        "num_rounds=1", "client.local_epochs=1", "quiet=true", f"hydra.run.dir='{run_dir}'",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(outside), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((run_dir / "status.yaml").read_text())["status"] == "completed"
    choices = yaml.safe_load((run_dir / "choices.yaml").read_text())
    assert choices["strategy"] == "scaled_gradients" and choices["model"] == "one_hidden"
    assert model_shapes(run_dir) == SHAPES
    table = round_table(load(run_dir))
    lines = [json.loads(line) for line in (run_dir / "accuracy.jsonl").read_text().splitlines()]
    assert lines == [{"round": r, "accuracy": value} for r, value in table["centralized_accuracy"].items()]
    assert list(table["train_gradient-scale"].dropna()) == [0.5]
