"""The device setting: checked before training, recorded, and the same numbers however the clients' processes start."""

import multiprocessing
import pickle
import random

import numpy as np
import pytest
import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedsim.config import ConfigError
from fedsim.devices import resolve_device
from fedsim.engines import RayEngine
from fedsim.engines import workers as workers_module
from fedsim.plan import build_plan
from fedsim.results import load
from fedsim.runner import run
from strategies.scaffold import SERVER_CONTROL_KEY
from tests.conftest import compose_config

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


def test_cpu_and_auto_resolve_to_a_device_this_machine_has():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", torch.cuda.current_device()) if HAS_CUDA else torch.device("cpu")
    assert resolve_device("auto") == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "mps", ""])
def test_an_unknown_device_names_the_choices(name):
    with pytest.raises(ConfigError) as error:
        resolve_device(name)
    assert str(error.value) == f"device must be auto, cpu, cuda or cuda:N (got {name!r})."


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_sentence_before_training(name):
    with pytest.raises(ConfigError) as error:
        build_plan(compose_config(f"device={name}"))
    assert str(error.value) == (
        f"device={name} needs a CUDA GPU, but this torch ({torch.__version__}) finds none; "
        "use device=cpu or device=auto."
    )


@needs_cuda
def test_a_gpu_index_past_the_last_is_one_sentence():
    count = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=rf"device=cuda:{count} names GPU {count}, but there are {count}"):
        resolve_device(f"cuda:{count}")


def test_ray_clients_need_a_gpu_share_to_train_on_a_gpu():
    engine = RayEngine(client_resources={"num_cpus": 1, "num_gpus": 0.0}, address="local")
    assert engine.client_device(torch.device("cpu")) == "cpu"
    with pytest.raises(ConfigError) as error:
        engine.client_device(torch.device("cuda", 0))
    assert str(error.value) == (
        "device=cuda:0 with engine=ray needs a GPU share for each ClientApp actor: set "
        "engine.client_resources.num_gpus above 0 (0.25: four actors share a GPU), or use device=cpu."
    )
    shared = RayEngine(client_resources={"num_cpus": 1, "num_gpus": 0.25}, address="local")
    assert shared.client_device(torch.device("cuda", 1)) == "cuda"  # the GPU Ray gives the actor


def test_the_run_folder_records_the_device(tmp_path):
    run(compose_config("num_rounds=1"), tmp_path, quiet=True)
    assert yaml.safe_load((tmp_path / "versions.yaml").read_text())["device"] == "cpu"


def test_a_client_app_pickles_as_the_call_that_built_it():
    plan = build_plan(compose_config("strategy=scaffold", "optimizer.momentum=0.9"))
    app = plan.client_app()
    copy = pickle.loads(pickle.dumps(app))
    assert copy is not app and copy.built_from == app.built_from
    config = ConfigRecord(dict(plan.train_config(1)) | {"server-round": 1})
    content = {"arrays": plan.initial_arrays, "config": config, SERVER_CONTROL_KEY: zeros_like(plan.initial_arrays)}
    replies = []
    for client_app in (app, copy):
        message = Message(RecordDict(content), dst_node_id=1, message_type="train")
        context = Context(run_id=1, node_id=1, node_config={"partition-id": 2}, state=RecordDict(), run_config={})
        replies.append(client_app(message, context))
    for name in replies[0].content["arrays"]:
        np.testing.assert_array_equal(
            replies[1].content["arrays"][name].numpy(), replies[0].content["arrays"][name].numpy()
        )
    assert replies[1].content["metrics"]["loss"] == replies[0].content["metrics"]["loss"]


def zeros_like(record: ArrayRecord) -> ArrayRecord:
    return ArrayRecord({name: torch.zeros(array.shape) for name, array in record.to_torch_state_dict().items()})


def test_spawned_workers_give_the_serial_metrics_bit_for_bit(tmp_path, monkeypatch):
    """Once this process has used CUDA, the local engine spawns its workers: the same numbers as serial."""
    methods = []

    def recording_get_context(method):
        methods.append(method)
        return multiprocessing.get_context(method)

    monkeypatch.setattr(workers_module, "get_context", recording_get_context)
    frames = {}
    for workers in (0, 2):
        if workers:
            monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # as after a GPU's first use
        random.seed(0)  # Flower's FedAvg orders its messages with Python's global random
        cfg = compose_config("num_clients=4", "clients_per_round=3", "strategy=scaffold", f"engine.workers={workers}")
        run(cfg, tmp_path / str(workers), quiet=True)
        frame = load(tmp_path / str(workers))
        frame = frame[frame["metric"] != "round_seconds"]
        frames[workers] = frame.set_index(["round", "stage", "client", "metric"])["value"].sort_index()
    assert methods == ["spawn", "spawn"]
    assert frames[0].index.equals(frames[2].index) and len(frames[0]) > 30
    np.testing.assert_array_equal(frames[2].values, frames[0].values)


def final_accuracy(tmp_path, *overrides: str) -> float:
    random.seed(0)
    run(compose_config("num_rounds=3", *overrides), tmp_path, quiet=True)
    frame = load(tmp_path)
    central = frame[(frame["stage"] == "central") & (frame["metric"] == "accuracy")]
    return float(central.sort_values("round")["value"].iloc[-1])


@needs_cuda
@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("engine.workers=2",),
        ("strategy=scaffold", "optimizer.momentum=0.9"),
        ("privacy=local_dp",),
        ("engine=ray", "engine.client_resources.num_gpus=0.25"),
    ],
)
def test_a_run_on_the_gpu_agrees_with_the_cpu_within_noise(tmp_path, overrides):
    on_cpu = final_accuracy(tmp_path / "cpu", "device=cpu", *overrides)
    on_gpu = final_accuracy(tmp_path / "gpu", "device=cuda", *overrides)
    assert abs(on_gpu - on_cpu) < 0.03
    assert yaml.safe_load((tmp_path / "gpu" / "versions.yaml").read_text())["device"].startswith("cuda:")


@needs_cuda
def test_a_gpu_run_repeats_itself(tmp_path):
    assert final_accuracy(tmp_path / "a", "device=cuda") == final_accuracy(tmp_path / "b", "device=cuda")
