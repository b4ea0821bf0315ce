"""The deployment engine: the run's apps on a Flower SuperLink and SuperNodes, over TLS, as a real federation runs them."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fedsim.config.checks import ConfigError, require
from fedsim.deployment.certificates import CA_FILE, CERTIFICATE_FILE, KEY_FILE
from fedsim.deployment.processes import (
    HOST,
    Connection,
    LocalFederation,
    LocalFederationSettings,
)

if TYPE_CHECKING:
    import torch


class DeploymentEngine:
    """Run the apps on a Flower SuperLink with SuperNodes: ones it starts on this machine, or an existing federation.

    Without ``superlink`` it starts a SuperLink and ``num_clients`` SuperNodes as
    separate processes, every one listening on 127.0.0.1 only, and stops them all when
    the run ends, fails or is interrupted. SuperNode ``i`` holds partition ``i``
    (``--node-config "partition-id=i num-partitions=N"``) and builds its data and model
    from the run config; every round's instructions arrive in messages, as in
    simulation. The run is submitted with ``flwr run`` (an app folder that names fedsim's
    ServerApp and ClientApp and carries the run config: ``fedsim.deployment.project``),
    and this process runs the ServerApp on the SuperLink's grid, so progress, callbacks
    and the run folder are as on every engine.

    Parameters
    ----------
    superlink : str | None
        ``HOST:PORT`` of a running SuperLink to use (started with ``--isolation process``,
        whose SuperNodes the operators started); null starts a federation here.
    port : int | None
        The port of the SuperLink fedsim starts (null: a free one).
    insecure : bool
        Plain text instead of TLS (false: TLS, the default). For the SuperLink fedsim
        starts, it needs ``node_auth: false``.
    certificates : str | None
        A folder with ``ca.crt``, ``server.pem`` and ``server.key`` for the SuperLink fedsim
        starts (its certificate must name 127.0.0.1); null: fedsim makes a CA and a
        certificate for 127.0.0.1 and localhost for the run.
    root_certificates : str | None
        The CA certificate (PEM) of an existing ``superlink``; null with ``insecure: false``
        trusts the system's CAs.
    node_auth : bool
        SuperNode authentication on the SuperLink fedsim starts: each node gets a key,
        registered before it starts; a node whose key is not registered is refused. (An
        existing SuperLink authenticates its nodes as its operator set it up.)
    allow : list[str]
        Packages besides fedsim's that the SuperNodes fedsim starts may build objects from
        (plug-ins: a dataset, a model, a client half of your own).
    isolation : str
        How the SuperNodes fedsim starts run the ClientApp: ``process`` (one fedsim process
        per node serves all its messages, keeping its data and model loaded) or
        ``subprocess`` (Flower's default: a new ``flwr-clientapp`` process per message,
        which loads the app from the run; seconds slower per message).
    node_seconds : float
        How long to wait for all SuperNodes to connect.
    workspace : str | None
        A folder to keep the federation's files in (logs, certificates, node keys, the app
        folder); null: a temporary folder, removed after the run.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        *,
        superlink: str | None,
        port: int | None,
        insecure: bool,
        certificates: str | None,
        root_certificates: str | None,
        node_auth: bool,
        allow: list[str],
        isolation: str,
        node_seconds: float,
        workspace: str | None,
    ) -> None:
        require(
            port is None or 1 <= port <= 65535, f"engine.port must be null (a free port) or in 1..65535 (got {port})."
        )
        require(
            isolation in ("process", "subprocess"), f"engine.isolation must be process or subprocess (got {isolation!r})."
        )
        require(node_seconds > 0, f"engine.node_seconds must be greater than 0 (got {node_seconds}).")
        require(
            not (insecure and node_auth and superlink is None),
            "engine.insecure=true needs engine.node_auth=false: Flower authenticates SuperNodes over TLS only.",
        )
        require(
            superlink is None or (":" in superlink and superlink.rpartition(":")[2].isdigit()),
            f"engine.superlink must be HOST:PORT of a SuperLink, or null to start one here (got {superlink!r}).",
        )
        from fedsim.deployment.allowlist import NotAllowed, allowed_packages

        try:
            allowed_packages({"fedsim-allow": ",".join(allow)})
        except NotAllowed:
            raise ConfigError(f"engine.allow must list package names such as mypkg or mypkg.sub (got {list(allow)}).") from None
        self.superlink = superlink
        self.port = port
        self.insecure = insecure
        self.certificates = None if certificates is None else Path(certificates).expanduser()
        self.root_certificates = None if root_certificates is None else Path(root_certificates).expanduser()
        self.node_auth = node_auth
        self.allow = tuple(allow)
        self.isolation = isolation
        self.node_seconds = float(node_seconds)
        self.workspace = None if workspace is None else Path(workspace).expanduser()
        self._node_device = "cpu"
        self._check_files_and_addresses()

    def _check_files_and_addresses(self) -> None:
        """Bad input in one sentence before anything starts: certificate files, the port, the SuperLink's address."""
        from fedsim.deployment.processes import port_in_use, why_silent

        if self.superlink is None:
            if self.certificates is not None and not self.insecure:
                check_certificates(self.certificates)
            if self.port is not None and port_in_use(self.port):
                raise ConfigError(f"engine.port={self.port} is in use on {HOST}; choose another port, or null for a free one.")
            return
        if self.root_certificates is not None and not self.root_certificates.is_file():
            raise ConfigError(f"engine.root_certificates={self.root_certificates} is not a file.")
        reason = why_silent(self.superlink, None if self.insecure else self.root_certificates)
        if reason:
            raise ConfigError(f"engine.superlink={self.superlink} cannot be used: {reason}.")

    def client_device(self, device: "torch.device") -> str:
        """The device the SuperNodes fedsim starts train on: the run's (each node's own ``fedsim-device`` elsewhere)."""
        self._node_device = str(device)
        return self._node_device

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        from fedsim.deployment.flower_runtime import serve_server_app
        from fedsim.deployment.processes import FlowerCommands
        from fedsim.deployment.project import run_config, write_app
        from fedsim.engines.local import torch_threads

        built_from = getattr(client_app, "built_from", None)
        if built_from is None:
            raise TypeError("engine=deployment runs fedsim's ClientApp (fedsim.apps.build_client_app) only")
        federation, model_factory, _ = built_from
        config = run_config(federation.settings, model_factory.config, model_factory.seed)
        with self._workspace() as folder, ExitStack() as stack:
            watch = lambda: None  # an existing federation's processes are not fedsim's to watch
            if self.superlink is None:
                local = stack.enter_context(LocalFederation(folder, self._local_settings(num_nodes)))
                connection, commands, watch = local.connection, local.commands, local.processes.check
            else:
                connection = Connection(self.superlink, None if self.insecure else self.root_certificates)
                commands = FlowerCommands(folder / "flwr", connection)
            run_id = commands.start_run(write_app(folder / "app", config))
            with torch_threads(1):
                serve_server_app(connection, run_id, server_app, num_nodes, self.node_seconds, watch)

    def _local_settings(self, num_nodes: int) -> LocalFederationSettings:
        return LocalFederationSettings(
            num_nodes=num_nodes, port=self.port, insecure=self.insecure, certificates=self.certificates,
            node_auth=self.node_auth, allow=self.allow, device=self._node_device, isolation=self.isolation,
        )

    @contextmanager
    def _workspace(self) -> Iterator[Path]:
        if self.workspace is not None:
            self.workspace.mkdir(parents=True, exist_ok=True)
            yield self.workspace.resolve()
            return
        folder = Path(tempfile.mkdtemp(prefix="fedsim-deployment-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def check_certificates(folder: Path) -> None:
    """ConfigError (one sentence) unless ``folder`` holds a CA, a certificate it signed for 127.0.0.1, and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    paths = {name: folder / name for name in (CA_FILE, CERTIFICATE_FILE, KEY_FILE)}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise ConfigError(
            f"engine.certificates={folder} lacks {', '.join(missing)}: it must hold {CA_FILE}, {CERTIFICATE_FILE} "
            f"and {KEY_FILE} (or set it to null and fedsim makes them)."
        )
    try:
        ca = x509.load_pem_x509_certificate(paths[CA_FILE].read_bytes())
        certificate = x509.load_pem_x509_certificate(paths[CERTIFICATE_FILE].read_bytes())
        key = serialization.load_pem_private_key(paths[KEY_FILE].read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"engine.certificates={folder} holds a file that is not a PEM certificate or key ({error}).") from None
    try:
        certificate.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        raise ConfigError(f"engine.certificates={folder}: {CERTIFICATE_FILE} is not signed by {CA_FILE}.") from None
    same = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*same) != certificate.public_key().public_bytes(*same):
        raise ConfigError(f"engine.certificates={folder}: {KEY_FILE} is not the key of {CERTIFICATE_FILE}.")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if names is None or ipaddress.ip_address(HOST) not in names.get_values_for_type(x509.IPAddress):
        raise ConfigError(
            f"engine.certificates={folder}: {CERTIFICATE_FILE} does not name {HOST}, where fedsim's SuperLink listens."
        )
