"""The Flower ClientApp and ServerApp of a run.

The ClientApp is built from the static pieces a node holds (its federation's data and
the model factory) and takes everything else from each message's config record, as
Flower intends: the training recipe, the client half, the run's seed. The same
ClientApp therefore runs unchanged wherever the messages come from. The ServerApp runs
the plan's strategy stack and hands every round to the callbacks.
"""

import time
from typing import TYPE_CHECKING

import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.attacks.client import attack_mod, attacked_data
from fedsim.callbacks.base import RunInfo
from fedsim.callbacks.divergence import DivergenceCheck
from fedsim.callbacks.heartbeat import Heartbeat
from fedsim.checkpoint import (
    LOAD_STATE,
    SAVE_STATE,
    Checkpoint,
    all_answered,
    file_sizes,
    load_node_states,
    load_server_state,
    node_states,
    save,
    server_state,
)
from fedsim.client_half import CLIENT_HALF_KEY, SEED_KEY, ClientHalf, client_half_class
from fedsim.data.spec import FederationSpec
from fedsim.devices import client_device
from fedsim.faults import faults_mod
from fedsim.models.building import ModelFactory, shared_model
from fedsim.privacy.central import client_side_clipping_mod
from fedsim.recording import RoundRecorder
from fedsim.resident import resident_record
from fedsim.seeds import stream_seed

if TYPE_CHECKING:
    from fedsim.plan import RunPlan

PARTITION_ID_KEY = "partition-id"
MODEL_FILE = "model.pt"
NODE_WAIT_SECONDS = 0.05


class BuiltClientApp(ClientApp):
    """A ClientApp that pickles as the call that built it, so a process it is sent to
    (a spawned worker, a Ray actor) builds its own from the same small pieces."""

    built_from: tuple

    def __reduce__(self):
        return (build_client_app, self.built_from)


def build_client_app(federation: FederationSpec, model_factory: ModelFactory, device: str = "cpu") -> ClientApp:
    """A ClientApp whose nodes train and evaluate on their partition of ``federation``, on ``device``.

    Client-side cross-cutting behaviour is a chain of Flower client mods around the
    handlers (injected faults, attacks, clipping for central DP); a malicious client's
    data are poisoned as its message says (``attacked_data``); local DP-SGD and
    augmentation happen in the one training function every client half uses. The
    device (a ``device`` setting: ``cpu``, ``cuda``, ...) is resolved in the process
    that runs the clients, once.
    """
    app = BuiltClientApp(mods=[faults_mod, attack_mod, client_side_clipping_mod])  # the first is outermost
    app.built_from = (federation, model_factory, device)

    def client_half(message: Message, context: Context) -> ClientHalf:
        config = message.content["config"]
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        seed = stream_seed(int(config[SEED_KEY]), "client", int(config["server-round"]), partition_id)
        loaded = federation.load()
        half = client_half_class(str(config[CLIENT_HALF_KEY]))
        data = attacked_data(loaded.client(partition_id), config).to(client_device(device))
        return half(message, context.state, data, seed, loaded.data.augmentation)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        half = client_half(message, context)
        model = shared_model(model_factory, client_device(device))
        half.load(model)
        metrics = half.start(model)
        metrics |= half.train(model, half.correct_gradients, half.correct_weights)
        metrics["num-examples"] = len(half.data.train_y)
        metrics["local-epochs"] = float(half.config["local-epochs"])
        extra = half.finish(model, metrics)
        content = RecordDict({"arrays": resident_record(model.state_dict()), **extra, "metrics": MetricRecord(metrics)})
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate_locally(message: Message, context: Context) -> Message:
        half = client_half(message, context)
        model = shared_model(model_factory, client_device(device))
        half.load(model)
        metrics = half.evaluate(model)
        metrics["num-examples"] = len(half.data.eval_y)
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)

    @app.query()
    def partition(message: Message, context: Context) -> Message:
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        return Message(RecordDict({"node": ConfigRecord({PARTITION_ID_KEY: partition_id})}), reply_to=message)

    @app.query(SAVE_STATE.split(".")[1])
    def save_state(message: Message, context: Context) -> Message:
        return Message(RecordDict(dict(context.state.items())), reply_to=message)

    @app.query(LOAD_STATE.split(".")[1])
    def load_state(message: Message, context: Context) -> Message:
        for key, record in message.content.items():
            context.state[key] = record
        return Message(RecordDict(), reply_to=message)

    return app


def discover_partitions(grid: Grid, num_nodes: int) -> dict[int, int]:
    """Ask every node for its partition id; waits until ``num_nodes`` nodes are connected."""
    while len(node_ids := list(grid.get_node_ids())) < num_nodes:
        time.sleep(NODE_WAIT_SECONDS)
    messages = [Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.QUERY) for node_id in node_ids]
    replies = all_answered(grid, messages, "report a partition")
    return {reply.metadata.src_node_id: int(reply.content["node"][PARTITION_ID_KEY]) for reply in replies}


def build_server_app(plan: "RunPlan", run: RunInfo, resume: Checkpoint | None = None) -> ServerApp:
    """A ServerApp that runs ``plan``'s strategy stack and hands every round to its callbacks.

    Every ``checkpoint.every`` rounds (but the last) it writes a checkpoint into the run
    folder; given ``resume``, one of them, it restores the strategy's and the nodes'
    state and continues after its round (``plan.history`` must hold the checkpoint's).
    """
    app = ServerApp()
    settings = plan.settings

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        node_partitions = discover_partitions(grid, settings.num_clients)
        # every run keeps its status fresh and checks for divergence (last: stops_run)
        callbacks = [*plan.callbacks, Heartbeat(), DivergenceCheck(stop=settings.stop_on_divergence)]
        recorder = RoundRecorder(
            plan.strategy_stack(node_partitions), node_partitions, callbacks, plan.history,
            skip_failed_rounds=settings.faults.skip_failed_rounds,
        )
        arrays, first_round = plan.initial_arrays, 1
        if resume is not None:
            load_server_state(recorder.strategy, resume.server_state)
            load_node_states(grid, node_partitions, resume.node_states)
            arrays, first_round = resume.arrays, resume.round + 1

        def save_checkpoint(server_round: int, arrays: ArrayRecord) -> None:
            every = settings.checkpoint_every
            if every and server_round % every == 0 and server_round < settings.num_rounds:
                states = node_states(grid, node_partitions)
                checkpoint = Checkpoint(
                    server_round, arrays, server_state(recorder.strategy), states, plan.history, file_sizes(run.run_dir)
                )
                save(run.run_dir, checkpoint)

        started, error = [], None
        try:
            for callback in callbacks:
                callback.on_run_start(run)
                started.append(callback)
            arrays = recorder.run_rounds(
                grid,
                arrays,
                first_round=first_round,
                num_rounds=settings.num_rounds,
                train_config=plan.train_config,
                evaluate_config=plan.evaluate_config(),
                evaluate_fn=plan.evaluate_centrally,
                after_round=save_checkpoint,
            )
        except BaseException as failure:
            error = failure
            raise
        finally:
            for callback in started:  # every callback that started ends, also when the run fails
                callback.on_run_end(run, plan.history, error)
        torch.save(arrays.to_torch_state_dict(), run.run_dir / MODEL_FILE)

    return app
