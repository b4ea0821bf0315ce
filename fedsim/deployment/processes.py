"""Flower's processes on this machine: a SuperLink and SuperNodes on 127.0.0.1, the ``flwr`` commands, their end.

Every process starts in a session (process group) of its own, so a Ctrl-C at the
terminal reaches fedsim alone, and stopping one ends everything it started (a
SuperNode's SuperExec and its ClientApp processes): SIGTERM to each group, then SIGKILL
to what is left after ``STOP_SECONDS``. ``fedsim.ray_watchdog`` kills them all should
fedsim itself be killed. Each process writes its output to ``LOGS/NAME.log``; when one
ends early, the error names it and quotes the last error line of its log.
"""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedsim.deployment.certificates import (
    CA_FILE,
    CERTIFICATE_FILE,
    KEY_FILE,
    make_node_key,
)

HOST = "127.0.0.1"
STOP_SECONDS = 10.0
START_SECONDS = 60.0  # a SuperLink that does not listen within this is reported (its log says why)
POLL_SECONDS = 0.1
CONNECTION = "fedsim"  # the SuperLink connection fedsim writes into its own Flower home
# SuperExec polls its SuperNode for ClientApp tasks once a second by default; a node on this
# machine can be asked ten times as often at no cost.
NODE_ENVIRONMENT = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1"}
# A local federation talks to nothing outside this machine (users may still set these).
QUIET_ENVIRONMENT = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


class ProcessEnded(RuntimeError):
    """A process fedsim started ended before it should have."""


@dataclass(frozen=True)
class Connection:
    """How to reach a SuperLink: ``HOST:PORT`` and the CA that signed its certificate (None: plain text)."""

    address: str
    root_certificates: Path | None

    @property
    def insecure(self) -> bool:
        return self.root_certificates is None


def executable(name: str) -> str:
    """The path of Flower's command ``name`` next to this Python (the environment fedsim runs in), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def child_environment(flower_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Flower process: its own Flower home, this Python's commands first on PATH."""
    env = dict(os.environ)
    for key, value in QUIET_ENVIRONMENT.items():
        env.setdefault(key, value)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["FLWR_HOME"] = str(flower_home)
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def why_silent(address: str, root_certificates: Path | None, timeout: float = 3.0) -> str | None:
    """Why the SuperLink at ``address`` cannot be reached (no answer, or a certificate that does not match), or None."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw:
            if root_certificates is None:
                return None
            context = ssl.create_default_context(cafile=str(root_certificates))
            with context.wrap_socket(raw, server_hostname=host.strip("[]")):
                return None
    except ssl.SSLCertVerificationError as error:
        return f"its certificate does not verify with {root_certificates} ({error.verify_message})"
    except ssl.SSLError as error:
        return f"it does not speak TLS ({error.reason})"
    except (OSError, ValueError) as error:
        return f"nothing answers there ({getattr(error, 'strerror', None) or error})"
    return None


def last_error_line(log: Path) -> str:
    """The last line of ``log`` that reads like an error (else its last line), for a one-line report.

    Flower's exit messages put the reason on the line after ``Exit Code: N``: both are given.
    """
    try:
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    except OSError:
        return "no log"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("ERROR", "Error", "error", "Failed", "failed"):
        for index in range(len(lines) - 1, -1, -1):
            if marker in lines[index]:
                reason = lines[index]
                if re.search(r"Exit Code: \d+$", reason) and index + 1 < len(lines):
                    reason = f"{reason}: {lines[index + 1]}"
                return reason[:300]
    return lines[-1][:300] if lines else "an empty log"


class Processes:
    """The processes fedsim started, each in its own process group, logging to ``logs``; ``stop`` ends them all."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen] = {}
        self._watchdog: subprocess.Popen | None = None

    def start(self, name: str, command: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(  # pylint: disable=consider-using-with
                list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def watch(self) -> None:
        """Start ``fedsim.ray_watchdog`` over every process started so far: it kills them if fedsim is killed."""
        if not sys.platform.startswith("linux") or not self.started:
            return
        pids = [str(process.pid) for process in self.started.values()]
        self._watchdog = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "fedsim.ray_watchdog", str(os.getpid()), *pids],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def check(self) -> None:
        """ProcessEnded if a started process has ended, naming it and quoting its log."""
        for name, process in self.started.items():
            if process.poll() is not None:
                log, code = self.logs / f"{name}.log", process.returncode
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"ended (exit code {code})"
                raise ProcessEnded(f"the {name} process {how}: {last_error_line(log)} (log: {log})")

    def stop(self) -> None:
        """End every started process and everything it started: SIGTERM, then SIGKILL after ``STOP_SECONDS``."""
        groups = {process.pid for process in self.started.values()}
        for group in groups:
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.started.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        while time.monotonic() < deadline and any(_group_alive(group) for group in groups):
            time.sleep(POLL_SECONDS)
        for group in groups:
            _signal_group(group, signal.SIGKILL)
        for process in self.started.values():
            process.wait()
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
        self.started.clear()


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` runs (zombies, waiting for their new parent to reap them, do not count)."""
    if not sys.platform.startswith("linux"):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != b"Z":
                return True
    return False


class FlowerCommands:
    """The ``flwr`` command with a Flower home of its own that knows one SuperLink connection."""

    def __init__(self, home: Path, connection: Connection) -> None:
        import tomli_w

        self.home = home
        entry: dict[str, object] = {"address": connection.address}
        if connection.insecure:
            entry["insecure"] = True
        else:
            entry["root-certificates"] = str(Path(connection.root_certificates).resolve())
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(tomli_w.dumps({"superlink": {"default": CONNECTION, CONNECTION: entry}}))

    def run_json(self, *args: str) -> dict:
        """The JSON answer of ``flwr ARGS --format json``; RuntimeError with its message, on one line, if it failed."""
        done = subprocess.run(  # noqa: PLW1510  # pylint: disable=subprocess-run-check  # its answer says how it went
            [executable("flwr"), *args, "--format", "json"], stdin=subprocess.DEVNULL, capture_output=True,
            text=True, env=child_environment(self.home), cwd=self.home,
        )
        return _answer(f"flwr {' '.join(args[:2])}", done.returncode, done.stdout, done.stderr)

    def start_run(self, app: Path) -> int:
        """Submit the Flower App in ``app`` to the SuperLink (``flwr run``); its run id."""
        return int(self.run_json("run", str(app), CONNECTION)["run-id"])

    def register_nodes(self, public_keys: Sequence[Path]) -> None:
        """Register SuperNodes' public keys with the SuperLink (``flwr supernode register``), side by side."""
        commands = [
            subprocess.Popen(  # pylint: disable=consider-using-with
                [executable("flwr"), "supernode", "register", str(key), CONNECTION, "--format", "json"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=child_environment(self.home), cwd=self.home,
            )
            for key in public_keys
        ]
        for key, command in zip(public_keys, commands, strict=True):
            out, err = command.communicate()
            _answer(f"flwr supernode register {key.name}", command.returncode, out, err)


def _answer(command: str, returncode: int, out: str, err: str) -> dict:
    """The JSON a ``flwr`` command printed; RuntimeError naming the command and its error, on one line, if it failed."""
    try:
        answer = json.loads(out[out.index("{"):])
    except ValueError:
        answer = {}
    if returncode != 0 or not answer.get("success"):
        said = answer.get("error-message") or (err or out).strip() or "no output"
        raise RuntimeError(f"`{command}` failed: {' '.join(str(said).split())}")
    return answer


@dataclass
class LocalFederationSettings:
    """What a local federation is made of (see ``DeploymentEngine``)."""

    num_nodes: int
    port: int | None
    insecure: bool
    certificates: Path | None  # a folder with ca.crt, server.pem, server.key; None: fedsim makes them
    node_auth: bool
    allow: tuple[str, ...]
    device: str
    isolation: str  # process: fedsim's ClientApp executor per node; subprocess: a flwr-clientapp per message
    # process: fedsim's process runs the ServerApp; subprocess: the SuperLink runs the app's ServerApp (flwr run by hand)
    serverapp_isolation: str = "process"


class LocalFederation:
    """A SuperLink and ``num_nodes`` SuperNodes on 127.0.0.1, in ``workspace``; a context manager that stops them.

    The SuperLink runs with ``--isolation process``: it starts no ServerApp itself, fedsim
    runs it (``fedsim.deployment.flower_runtime``); ``serverapp_isolation="subprocess"``
    leaves it to the SuperLink, which runs the app's ServerApp as for ``flwr run`` by hand.
    With TLS it serves the certificates in
    ``certificates`` (or ones fedsim makes for 127.0.0.1 and localhost); with node
    authentication each SuperNode gets a key of its own, registered before it starts.
    Node ``i`` gets ``partition-id=i num-partitions=num_nodes``, the allowed packages and
    the device in its node config, and a Flower home of its own. With ``isolation``
    ``process`` each SuperNode gets fedsim's ClientApp executor
    (``fedsim.deployment.clientapp_executor``); with ``subprocess`` the SuperNode starts a
    ``flwr-clientapp`` process for every message, Flower's default.
    """

    def __init__(self, workspace: Path, settings: LocalFederationSettings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.processes = Processes(workspace / "logs")
        self.connection: Connection | None = None
        self.commands: FlowerCommands | None = None

    def __enter__(self) -> "LocalFederation":
        try:
            self._start()
        except BaseException:
            self.processes.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.processes.stop()

    def _certificates(self) -> Path:
        if self.settings.certificates is not None:
            return self.settings.certificates
        from fedsim.deployment.certificates import make_certificates

        return make_certificates(self.workspace / "certificates")

    def _start(self) -> None:
        settings = self.settings
        port = settings.port or free_port()
        certificates = None if settings.insecure else self._certificates()
        link = [executable("flower-superlink"), "--host", HOST, "--port", str(port),
                "--isolation", settings.serverapp_isolation, "--disable-runtime-dependency-installation"]
        if certificates is None:
            link.append("--insecure")
        else:
            link += ["--ssl-ca-certfile", str(certificates / CA_FILE), "--ssl-certfile", str(certificates / CERTIFICATE_FILE),
                     "--ssl-keyfile", str(certificates / KEY_FILE)]
        if settings.node_auth:
            link.append("--enable-supernode-auth")
        home = self.workspace / "superlink"
        home.mkdir(parents=True, exist_ok=True)
        self.processes.start("superlink", link, child_environment(home), home)
        address = f"{HOST}:{port}"
        self.connection = Connection(address, None if certificates is None else certificates / CA_FILE)
        self._wait_until_listening(port)
        self.commands = FlowerCommands(self.workspace / "flwr", self.connection)
        keys = []
        if settings.node_auth:
            keys = [make_node_key(self.workspace / "node-keys" / f"node-{i}") for i in range(settings.num_nodes)]
            self.commands.register_nodes([public for _, public in keys])
        for i in range(settings.num_nodes):
            self.start_node(i, private_key=keys[i][0] if keys else None)
        self.processes.watch()

    def start_node(  # pylint: disable=too-many-arguments
        self, partition: int, private_key: Path | None = None, insecure: bool | None = None, name: str | None = None,
        isolation: str | None = None, extra: Sequence[str] = (),
    ) -> subprocess.Popen:
        """Start SuperNode ``partition`` against this federation's SuperLink (by default as the federation says)."""
        from fedsim.deployment.allowlist import ALLOW_KEY
        from fedsim.deployment.app import DEVICE_KEY

        settings, connection = self.settings, self.connection
        insecure = connection.insecure if insecure is None else insecure
        isolation = isolation or settings.isolation
        node_config = f"partition-id={partition} num-partitions={settings.num_nodes} {DEVICE_KEY}=\"{settings.device}\""
        if settings.allow:
            node_config += f" {ALLOW_KEY}=\"{','.join(settings.allow)}\""
        runtime_port = free_port()
        command = [executable("flower-supernode"), "--superlink", connection.address, "--host", HOST,
                   "--port", str(runtime_port), "--node-config", node_config, "--isolation", isolation, *extra]
        command += ["--insecure"] if insecure else ["--root-certificates", str(connection.root_certificates)]
        if private_key is not None:
            command += ["--auth-supernode-private-key", str(private_key)]
        name = name or f"supernode-{partition}"
        home = self.workspace / name
        home.mkdir(parents=True, exist_ok=True)
        node = self.processes.start(name, command, child_environment(home, **NODE_ENVIRONMENT), home)
        if isolation == "process":
            executor = [sys.executable, "-m", "fedsim.deployment", "clientapp", "--supernode", f"{HOST}:{runtime_port}"]
            self.processes.start(name.replace("supernode", "clientapp"), executor, child_environment(home), home)
        return node

    def _wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            self.processes.check()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((HOST, port)) == 0:
                    return
            time.sleep(POLL_SECONDS)
        raise ProcessEnded(f"the SuperLink did not listen on {HOST}:{port} within {START_SECONDS:g} s")
