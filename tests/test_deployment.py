"""engine=deployment and fedsim's Flower App: a SuperLink and SuperNodes on loopback, over TLS with node authentication.

Every federation here listens on 127.0.0.1 only. Each test that starts Flower's
processes checks that none is left when it ends (``no_process_left``).
"""

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from omegaconf import OmegaConf

import tests.deployment_plugin
from fedsim.config import ConfigError
from fedsim.data.spec import FederationSpec
from fedsim.deployment.allowlist import NotAllowed, allowed_object, allowed_packages
from fedsim.deployment.app import client_app
from fedsim.deployment.certificates import (
    CA_FILE,
    KEY_FILE,
    make_certificates,
    make_node_key,
)
from fedsim.deployment.processes import (
    CONNECTION,
    LocalFederation,
    LocalFederationSettings,
    free_port,
)
from fedsim.deployment.project import run_config
from fedsim.deployment.wire import FlowerArraysGrid, with_flower_arrays
from fedsim.flower_internals import set_task_identity
from fedsim.instantiate import build
from fedsim.resident import ResidentArray, resident_record
from fedsim.results import load, read_metrics, read_status
from fedsim.runner import run
from tests.conftest import compose_config
from tests.option_files import option_node

REPO = Path(__file__).resolve().parents[1]
# What Flower's processes and fedsim's own for a federation run as (the command lines they show).
FLOWER_PROCESSES = (
    "flower-superlink", "flower-supernode", "flower-superexec", "flwr-clientapp", "flwr-serverapp",
    "-m fedsim.deployment", "fedsim.ray_watchdog",
)
FEDERATION = ("num_clients=3", "num_rounds=3", "client.local_epochs=1")


def flower_processes() -> dict[int, str]:
    """The running (not zombie) processes of Flower's federations and fedsim's executors, by pid."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            command = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and any(marker in command for marker in FLOWER_PROCESSES):
            found[int(name)] = command
    return found


@pytest.fixture
def no_process_left():
    """Fail the test if a Flower process it started still runs a few seconds after it ended."""
    before = set(flower_processes())
    yield
    deadline = time.monotonic() + 10
    while (left := {pid: cmd for pid, cmd in flower_processes().items() if pid not in before}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


def engine_node(**settings):
    """conf/engine/deployment.yaml with some settings replaced."""
    node = option_node("engine", "deployment")
    for key, value in settings.items():
        node[key] = value
    return node


def without_timing(run_dir: Path) -> pd.DataFrame:
    metrics = read_metrics(run_dir / "metrics.csv")
    return metrics[metrics.metric != "round_seconds"].reset_index(drop=True)


# --- a federation over TLS ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_three_nodes_over_tls_record_exactly_what_the_local_engine_records(tmp_path, no_process_left):
    run(compose_config(*FEDERATION), tmp_path / "local", quiet=True)
    workspace = tmp_path / "federation"
    # a checkpoint after round 2: every node's state fetched over the network, the global model pickled
    summary = run(
        compose_config(*FEDERATION, "checkpoint.every=2", "engine=deployment", f"engine.workspace={workspace}"),
        tmp_path / "deployed", quiet=True,
    )
    # every value bit for bit, in the same rows, but the rounds' wall times
    pd.testing.assert_frame_equal(without_timing(tmp_path / "deployed"), without_timing(tmp_path / "local"), check_exact=True)
    assert read_status(tmp_path / "deployed")["status"] == "completed"
    assert summary.final["centralized_accuracy"] > 0.5
    loaded = load([tmp_path / "deployed", tmp_path / "local"])  # results.load reads the run folder as any other
    assert loaded.groupby("run").size().to_dict() == {str(tmp_path / "deployed"): 134, str(tmp_path / "local"): 134}
    # it ran over TLS on 127.0.0.1 with authenticated SuperNodes, one ClientApp executor per node
    link_log = (workspace / "logs" / "superlink.log").read_text()
    assert "Uvicorn running on https://127.0.0.1:" in link_log
    assert "SuperNode authentication is disabled" not in link_log
    assert sorted(path.name for path in (workspace / "node-keys").iterdir()) == [
        "node-0", "node-0.pub", "node-1", "node-1.pub", "node-2", "node-2.pub",
    ]
    assert sorted(path.name for path in (workspace / "logs").iterdir()) == [
        "clientapp-0.log", "clientapp-1.log", "clientapp-2.log",
        "superlink.log", "supernode-0.log", "supernode-1.log", "supernode-2.log",
    ]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_existing_federation_runs_fedsim_and_refuses_unregistered_or_plain_text_nodes(tmp_path, no_process_left):
    settings = LocalFederationSettings(
        num_nodes=1, port=None, insecure=False, certificates=None, node_auth=True, allow=(), device="cpu",
        isolation="process",
    )
    with LocalFederation(tmp_path / "federation", settings) as federation:
        address, ca = federation.connection.address, federation.connection.root_certificates
        stranger_key, _ = make_node_key(tmp_path / "stranger")  # never registered
        stranger = federation.start_node(0, private_key=stranger_key, name="supernode-stranger", isolation="subprocess")
        plain = federation.start_node(
            0, insecure=True, name="supernode-plain", isolation="subprocess", extra=["--max-retries", "1"]
        )
        assert stranger.wait(timeout=60) != 0
        assert plain.wait(timeout=60) != 0
        logs = tmp_path / "federation" / "logs"
        assert "Failed to activate SuperNode" in (logs / "supernode-stranger.log").read_text()
        assert "Connection attempt failed" in (logs / "supernode-plain.log").read_text()
        deadline = time.monotonic() + 30
        while not (nodes := federation.commands.run_json("supernode", "ls", CONNECTION)["nodes"]):
            assert time.monotonic() < deadline, "the registered SuperNode did not connect"
            time.sleep(0.5)
        assert len(nodes) == 1  # the registered node only
        # fedsim runs an experiment on a federation it did not start (engine.superlink), reached as localhost
        port = address.rpartition(":")[2]
        summary = run(
            compose_config("num_clients=1", "num_rounds=1", "engine=deployment", f"engine.superlink=localhost:{port}",
                           f"engine.root_certificates={ca}"),
            tmp_path / "run", quiet=True,
        )
        assert read_status(tmp_path / "run")["status"] == "completed" and summary.final["centralized_accuracy"] > 0
        # the SuperLink's certificate does not verify with another CA: engine.superlink says so before anything runs
        other = make_certificates(tmp_path / "other")
        with pytest.raises(ConfigError) as raised:
            build(engine_node(superlink=address, root_certificates=str(other / CA_FILE)))
        assert str(raised.value).startswith(f"engine.superlink={address} cannot be used: its certificate does not verify with")


# --- what a SuperNode builds -------------------------------------------------------------------------------


def node_context(model_target: str = "fedsim.models.MLP", allow: str = "", partitions: int = 3) -> Context:
    cfg = compose_config("num_clients=3", f"model._target_={model_target}")
    config = run_config(FederationSpec.from_config(cfg).settings, OmegaConf.to_yaml(cfg.model, resolve=True), 0)
    # this process's thread count, which building the node's app would otherwise set for the tests that follow
    node_config = {
        "partition-id": 1, "num-partitions": partitions, "fedsim-allow": allow, "fedsim-threads": torch.get_num_threads(),
    }
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config=config)


def ask(context: Context, config: dict | None = None, message_type: str = MessageType.QUERY) -> Message:
    set_task_identity(run_id=1, node_id=0)
    content = RecordDict({"config": ConfigRecord(config)}) if config else RecordDict()
    return client_app(Message(content, dst_node_id=7, message_type=message_type), context)


@pytest.fixture
def flower_errors(caplog):
    """The ERROR lines fedsim logs on a node, through Flower's logger."""
    with caplog.at_level(logging.ERROR, logger="flwr"):
        yield caplog


def test_a_node_answers_a_run_of_fedsim_within_its_allow_list(flower_errors):
    reply = ask(node_context())
    assert not reply.has_error()
    assert reply.content["node"]["partition-id"] == 1
    assert flower_errors.records == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.deployment_plugin.record_call", "model._target_=tests.deployment_plugin.record_call is refused: this node "
         "builds only from fedsim, strategies (its operator allows more with --node-config 'fedsim-allow=\"PACKAGE,...\"')."),
        ("os.system", "model._target_=os.system is refused: this node builds only from fedsim, strategies (its operator "
         "allows more with --node-config 'fedsim-allow=\"PACKAGE,...\"')."),
        # a name inside fedsim that leads outside it (fedsim.data imports Hugging Face's datasets)
        ("fedsim.data.datasets.load_dataset", "model._target_=fedsim.data.datasets.load_dataset is refused: it is not "
         "a class or function defined in fedsim, strategies."),
        ("fedsim.models.__builtins__", "model._target_=fedsim.models.__builtins__ is refused: this node builds only from "
         "fedsim, strategies (its operator allows more with --node-config 'fedsim-allow=\"PACKAGE,...\"')."),
    ],
)
def test_a_run_config_naming_another_callable_is_refused_in_one_line(target, message, flower_errors):
    tests.deployment_plugin.CALLS.clear()
    reply = ask(node_context(model_target=target))
    assert reply.has_error()
    assert reply.error.reason == message
    assert [record.getMessage() for record in flower_errors.records] == [f"fedsim: {message}"]
    assert tests.deployment_plugin.CALLS == []  # nothing it named ran


def test_a_message_naming_a_class_outside_the_allow_list_is_refused_before_its_import(flower_errors):
    reply = ask(node_context(), {"client-half": "subprocess.Popen"}, MessageType.TRAIN)
    assert reply.error.reason.startswith("the message's client-half=subprocess.Popen is refused")
    assert len(flower_errors.records) == 1


def test_a_plugin_outside_fedsim_is_built_where_the_operator_allows_it(flower_errors):
    refused = ask(node_context(model_target="tests.deployment_plugin.PluginMLP"))
    assert refused.error.reason.startswith("model._target_=tests.deployment_plugin.PluginMLP is refused")
    allowed = ask(node_context(model_target="tests.deployment_plugin.PluginMLP", allow="tests.deployment_plugin"))
    assert not allowed.has_error()
    packages = allowed_packages({"fedsim-allow": "tests.deployment_plugin, other.pkg"})
    assert packages == ("fedsim", "strategies", "tests.deployment_plugin", "other.pkg")
    assert allowed_object("tests.deployment_plugin.PluginMLP", packages, "model") is tests.deployment_plugin.PluginMLP
    with pytest.raises(NotAllowed):  # a prefix of a name is not the package
        allowed_object("tests.deployment_plugin_x.PluginMLP", packages, "model")


def test_the_executor_runs_fedsim_s_client_app_only(tmp_path, flower_errors):
    import zipfile

    from fedsim.deployment.clientapp_executor import answer
    from fedsim.deployment.project import write_app

    def fab(clientapp: str) -> bytes:
        text = (write_app(tmp_path, run_config("", "", 0)) / "pyproject.toml").read_text()
        text = text.replace('clientapp = "fedsim.deployment.app:client_app"', f'clientapp = "{clientapp}"')
        with zipfile.ZipFile(tmp_path / "app.fab", "w") as bundle:
            bundle.writestr("pyproject.toml", text)
        return (tmp_path / "app.fab").read_bytes()

    set_task_identity(run_id=1, node_id=0)
    message = Message(RecordDict(), dst_node_id=7, message_type=MessageType.QUERY)
    reply = answer(message, node_context(), fab("theirs.app:client_app"))
    assert reply.error.reason == (
        "this node runs fedsim's ClientApp (fedsim.deployment.app:client_app) only; the run's app names theirs.app:client_app."
    )
    assert len(flower_errors.records) == 1
    assert answer(message, node_context(), fab("fedsim.deployment.app:client_app")).content["node"]["partition-id"] == 1


def test_a_node_outside_the_federations_partitions_is_refused():
    reply = ask(node_context(partitions=5))
    assert reply.error.reason == (
        "this node's node config says partition-id=1 num-partitions=5, but the run has 3 clients: give it a "
        "partition-id in 0..2 and num-partitions=3."
    )


def test_resident_arrays_leave_the_process_as_flower_arrays():
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.inflatable.inflatable_utils import (
        UnexpectedObjectContentError,
        inflate_object_from_contents,
        validate_object_content,
    )

    set_task_identity(run_id=1, node_id=0)
    values = np.arange(12, dtype=np.float32).reshape(3, 4)

    def message() -> Message:
        content = RecordDict({"arrays": resident_record({"w": torch.from_numpy(values), "b": torch.ones(2)})})
        return Message(content, dst_node_id=5, message_type=MessageType.TRAIN)

    def contents(sent: Message) -> dict[str, bytes]:
        return {object_id: obj.deflate() for object_id, obj in get_all_nested_objects(sent).items()}

    with pytest.raises(UnexpectedObjectContentError, match="ResidentArray is not supported"):
        for content in contents(message()).values():  # what a SuperLink or SuperNode checks on arrival
            validate_object_content(content)
    sent = message()
    with_flower_arrays(sent.content)
    assert not any(isinstance(array, ResidentArray) for array in sent.content["arrays"].values())
    objects = contents(sent)
    for content in objects.values():
        validate_object_content(content)
    received = inflate_object_from_contents(sent.object_id, objects)
    np.testing.assert_array_equal(received.content["arrays"]["w"].numpy(), values)
    np.testing.assert_array_equal(received.content["arrays"]["b"].numpy(), np.ones(2, dtype=np.float32))


def test_the_server_sends_copies_and_keeps_its_own_records_as_they_were():
    from flwr.app import Array, ArrayRecord
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    class DeflatingGrid:  # what a network grid does to what it pushes: deflate every object, caching chunks
        def push_messages(self, messages):
            self.pushed = list(messages)
            return [len(get_all_nested_objects(message)) and message.object_id for message in self.pushed]

    set_task_identity(run_id=1, node_id=0)
    global_model = ArrayRecord({"w": Array(np.ones((2, 3), dtype=np.float32))})
    control = resident_record({"c": torch.zeros(4)})  # a strategy's resident arrays (SCAFFOLD's control variate)
    content = RecordDict({"arrays": global_model, "control": control, "config": ConfigRecord({"lr": 0.1})})
    network = DeflatingGrid()
    FlowerArraysGrid(network).push_messages([Message(content, dst_node_id=n, message_type=MessageType.TRAIN) for n in (5, 6)])
    first, second = network.pushed
    assert first.content is second.content  # one copy of a record, however many messages share it
    assert type(first.content["control"]["c"]) is Array and first.content["arrays"] is not global_model
    assert isinstance(control["c"], ResidentArray)
    pickle.dumps((global_model, control))  # a checkpoint of the server's records still pickles


# --- a run that fails, is interrupted, or is refused before it starts ---------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_run_the_nodes_refuse_fails_with_their_reason_and_stops_every_process(tmp_path, monkeypatch, no_process_left):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the nodes can import the plug-in, but do not allow it
    cfg = compose_config(
        "num_clients=2", "num_rounds=1", "model._target_=tests.deployment_plugin.PluginMLP",
        "engine=deployment", f"engine.workspace={tmp_path / 'federation'}",
    )
    with pytest.raises(RuntimeError, match="did not report a partition"):
        run(cfg, tmp_path / "run", quiet=True)
    status = read_status(tmp_path / "run")
    assert status["status"] == "failed"
    assert "model._target_=tests.deployment_plugin.PluginMLP is refused" in status["reason"]
    executor_log = (tmp_path / "federation" / "logs" / "clientapp-0.log").read_text().splitlines()
    assert [line for line in executor_log if "is refused" in line] == [
        line for line in executor_log if "fedsim: model._target_=tests.deployment_plugin.PluginMLP is refused" in line
    ]
    assert len([line for line in executor_log if "is refused" in line]) == 1  # one message, one line
    assert not any("Traceback" in line for line in executor_log)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_interrupted_run_is_recorded_and_stops_every_process(tmp_path, no_process_left):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "fedsim.cli", "num_clients=2", "num_rounds=50", "client.local_epochs=1",
        "engine=deployment", f"hydra.run.dir={run_dir}",
    ]
    fedsim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not rows_recorded(run_dir / "metrics.csv"):  # the initial model evaluated: the federation is up
            assert fedsim.poll() is None and time.monotonic() < deadline, fedsim.communicate()
            time.sleep(0.2)
        fedsim.send_signal(signal.SIGINT)
        out, err = fedsim.communicate(timeout=60)
    finally:
        fedsim.kill()
    assert fedsim.returncode == 130
    assert "round  0/50" in out  # progress streamed as on every engine
    assert err.strip().splitlines()[-1].startswith("fedsim: interrupted after round ")
    assert read_status(run_dir)["status"] == "interrupted"


def rows_recorded(metrics: Path) -> bool:
    """Whether metrics.csv holds a round's rows (the run writes its header before round 0)."""
    return metrics.is_file() and len(metrics.read_text().splitlines()) > 1


def certificates_folder(tmp_path: Path, ca_of_other: bool = False, missing: str | None = None) -> Path:
    folder = make_certificates(tmp_path / "certificates")
    if ca_of_other:
        other = make_certificates(tmp_path / "other")
        (folder / CA_FILE).write_bytes((other / CA_FILE).read_bytes())
    if missing:
        (folder / missing).unlink()
    return folder


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("silent superlink", "engine.superlink=127.0.0.1:{port} cannot be used: nothing answers there (Connection refused)."),
        ("missing key", "engine.certificates={folder} lacks server.key: it must hold ca.crt, server.pem and server.key "
         "(or set it to null and fedsim makes them)."),
        ("another CA", "engine.certificates={folder}: server.pem is not signed by ca.crt."),
        ("port in use", "engine.port={port} is in use on 127.0.0.1; choose another port, or null for a free one."),
        ("plain text with node auth", "engine.insecure=true needs engine.node_auth=false: Flower authenticates "
         "SuperNodes over TLS only."),
    ],
)
def test_bad_input_is_one_sentence_before_any_process_starts(case, message, tmp_path, no_process_left):
    port, folder, settings = free_port(), None, {}
    with socket.socket() as listener:
        if case == "silent superlink":
            settings = {"superlink": f"127.0.0.1:{port}"}
        elif case in ("missing key", "another CA"):
            folder = certificates_folder(tmp_path, ca_of_other=case == "another CA", missing=KEY_FILE if case == "missing key" else None)
            settings = {"certificates": str(folder)}
        elif case == "port in use":
            listener.bind(("127.0.0.1", port))
            listener.listen()
            settings = {"port": port}
        else:
            settings = {"insecure": True}
        with pytest.raises(ConfigError) as raised:
            build(engine_node(**settings))
    assert str(raised.value) == message.format(port=port, folder=folder)


def test_the_fedsim_command_says_a_bad_deployment_setting_in_one_line(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "fedsim.cli", "engine=deployment", f"engine.port={port}", f"hydra.run.dir={tmp_path / 'run'}"],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"fedsim: error: engine.port={port} is in use on 127.0.0.1; choose another port, or null for a free one."
    ]


# --- flwr run by hand: Flower's runtime runs fedsim's ServerApp and ClientApp -------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_flwr_run_of_the_app_folder_records_what_the_local_engine_records(tmp_path, no_process_left):
    # SCAFFOLD: its control variates are resident arrays both ways, and each node keeps its own between rounds
    overrides = ["num_clients=2", "num_rounds=2", "client.local_epochs=1", "eval_clients_per_round=0", "strategy=scaffold"]
    app, run_dir = tmp_path / "app", tmp_path / "by-hand"
    subprocess.run(
        [sys.executable, "-m", "fedsim.deployment", "app", str(app), *overrides, "--run-dir", str(run_dir)], check=True,
        capture_output=True,
    )
    # Flower's defaults: the SuperLink runs the app's ServerApp, each SuperNode a flwr-clientapp per message
    settings = LocalFederationSettings(
        num_nodes=2, port=None, insecure=True, certificates=None, node_auth=False, allow=(), device="cpu",
        isolation="subprocess", serverapp_isolation="subprocess",
    )
    with LocalFederation(tmp_path / "federation", settings) as federation:
        federation.commands.start_run(app)
        deadline = time.monotonic() + 240
        while not (run_dir / "status.yaml").is_file() or read_status(run_dir)["status"] == "running":
            federation.processes.check()
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.5)
    assert read_status(run_dir)["status"] == "completed"
    run(compose_config(*overrides), tmp_path / "local", quiet=True)
    pd.testing.assert_frame_equal(without_timing(run_dir), without_timing(tmp_path / "local"), check_exact=True)
    assert yaml.safe_load((run_dir / "choices.yaml").read_text())["engine"] == "deployment"
