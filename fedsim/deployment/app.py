"""fedsim as a Flower App: the ServerApp and ClientApp that ``flwr run`` loads (``[tool.flwr.app.components]``).

The run config (``[tool.flwr.app.config]``, see ``fedsim.deployment.project``) carries
what each SuperNode builds once for the run, its static pieces: the federation's data
description (``federation``: dataset, partitioner, number of clients, seed, evaluation
share, as YAML) and the model option (``model``, ``model-seed``). Everything a client
needs for a round still arrives in each message, as in simulation. A node's partition
comes from its node config (``partition-id``, ``num-partitions``), which its operator
sets; so do ``fedsim-allow`` (see ``fedsim.deployment.allowlist``), ``fedsim-device``
(``cpu`` by default) and ``fedsim-threads`` (torch's threads, 1 by default, as the local
engine's: the same thread count computes the same bits).

``config`` (the whole fedsim config, as YAML), ``choices`` (its group choices) and
``run-dir`` are for the ServerApp when Flower's runtime runs it (a SuperLink started
without ``--isolation process``): it then runs the experiment and writes its run folder
at ``run-dir`` on the SuperLink's machine. Under ``engine=deployment`` they are empty:
fedsim's own process runs the ServerApp and writes the run folder.
"""

import functools
import logging
from pathlib import Path

import yaml
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from omegaconf import OmegaConf

from fedsim.deployment.allowlist import (
    NotAllowed,
    allowed_object,
    allowed_packages,
    check_targets,
)
from fedsim.deployment.wire import FlowerArraysGrid, with_flower_arrays
from fedsim.flower_internals import ErrorCode

FEDERATION_KEY = "federation"
MODEL_KEY = "model"
MODEL_SEED_KEY = "model-seed"
CONFIG_KEY = "config"
CHOICES_KEY = "choices"
RUN_DIR_KEY = "run-dir"
DEVICE_KEY = "fedsim-device"
THREADS_KEY = "fedsim-threads"
DEFAULT_RUN_DIR = "fedsim-runs"  # under the ServerApp's working folder: fedsim-runs/RUN_ID
# The keys of a message's config record that name a class for the client to import.
CLASS_PATH_KEYS = ("client-half", "optimizer", "attack")


class NodeClientApp(ClientApp):
    """fedsim's ClientApp on a SuperNode: built from the run config, within what the node allows.

    Every message is checked first: the run config's targets and the class paths the
    message names must lie within the node's allowed packages, and the node's partition
    within the federation. A refusal is one line in the node's log and an error reply
    naming the setting; nothing outside the allowed packages is imported.
    """

    def __call__(self, message: Message, context: Context) -> Message:  # type: ignore[override]
        try:
            app = _node_app(context)
            packages = allowed_packages(context.node_config)
            config = message.content.config_records.get("config", {})
            for key in CLASS_PATH_KEYS:
                if key in config:
                    allowed_object(str(config[key]), packages, f"the message's {key}")
        except NotAllowed as refused:
            log(logging.ERROR, "fedsim: %s", refused)  # one line in the SuperNode's log
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(refused)), reply_to=message)
        reply = app(message, context)
        if reply.has_content():
            with_flower_arrays(reply.content)
        return reply


def _node_app(context: Context) -> ClientApp:
    """The ClientApp this node builds for the run config in ``context`` (checked; built once per process)."""
    run_config, node_config = context.run_config, context.node_config
    missing = [key for key in (FEDERATION_KEY, MODEL_KEY, MODEL_SEED_KEY) if run_config.get(key, "") == ""]
    if missing:
        raise NotAllowed(f"the run config lacks {', '.join(missing)}: this is not a run of fedsim's app.")
    return _built_app(
        str(run_config[FEDERATION_KEY]),
        str(run_config[MODEL_KEY]),
        int(run_config[MODEL_SEED_KEY]),
        allowed_packages(node_config),
        int(node_config.get("partition-id", -1)),
        int(node_config.get("num-partitions", -1)),
        str(node_config.get(DEVICE_KEY, "cpu")),
        int(node_config.get(THREADS_KEY, 1)),
    )


@functools.lru_cache(maxsize=2)
def _built_app(  # pylint: disable=too-many-arguments,too-many-positional-arguments
    federation: str, model: str, model_seed: int, packages: tuple[str, ...], partition: int, partitions: int,
    device: str, threads: int,
) -> ClientApp:
    import torch

    from fedsim.apps import build_client_app
    from fedsim.data.spec import FederationSpec
    from fedsim.models.building import ModelFactory

    federation_cfg = OmegaConf.create(federation)
    check_targets(OmegaConf.to_container(federation_cfg), packages, "federation")
    check_targets(yaml.safe_load(model), packages, "model")
    num_clients = int(federation_cfg.num_clients)
    if partitions != num_clients or not 0 <= partition < num_clients:
        raise NotAllowed(
            f"this node's node config says partition-id={partition} num-partitions={partitions}, but the run has "
            f"{num_clients} clients: give it a partition-id in 0..{num_clients - 1} and num-partitions={num_clients}."
        )
    torch.set_num_threads(threads)
    spec = FederationSpec(federation)
    data = spec.load().data
    factory = ModelFactory(model, tuple(data.input_shape), int(data.num_classes), model_seed)
    return build_client_app(spec, factory, device)


client_app = NodeClientApp()
server_app = ServerApp()


class FlowerRuntimeGrid:
    """The engine of a run whose ServerApp Flower's runtime started: it runs on the grid Flower gave it."""

    def __init__(self, grid: Grid, context: Context) -> None:
        self.grid = grid
        self.context = context

    def client_device(self, device) -> str:
        return str(device)

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        from fedsim.engines.local import torch_threads

        with torch_threads(1):
            server_app(FlowerArraysGrid(self.grid), self.context)


@server_app.main()
def run_experiment(grid: Grid, context: Context) -> None:
    """Run the experiment of the run config's ``config`` on ``grid``, into its ``run-dir``."""
    from fedsim.config import Config, ConfigError
    from fedsim.runner import run

    text = str(context.run_config.get(CONFIG_KEY) or "")
    if not text:
        raise ConfigError(
            "the run config has no fedsim config: make the app with `python -m fedsim.deployment app FOLDER "
            "[OVERRIDES]`, or let engine=deployment run the ServerApp (its SuperLink started with --isolation process)."
        )
    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(text))  # typed, as a run folder's loads
    choices = yaml.safe_load(str(context.run_config.get(CHOICES_KEY) or "")) or {}
    run_dir = Path(str(context.run_config.get(RUN_DIR_KEY) or Path(DEFAULT_RUN_DIR) / str(context.run_id)))
    run(cfg, run_dir, choices, quiet=True, engine=FlowerRuntimeGrid(grid, context))
