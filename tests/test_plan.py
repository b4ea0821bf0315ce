"""The run plan: built once, what crosses to other processes is small, every round's settings travel in the message."""

import pickle

import cloudpickle
import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict

import fedsim.models.building
from fedsim.client_half import CLIENT_HALF_KEY, ClientHalf
from fedsim.config import ConfigError
from fedsim.flower_internals import set_task_identity
from fedsim.models.building import shared_model
from fedsim.plan import build_plan
from fedsim.runner import execute
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def plan():
    return build_plan(compose_config("num_clients=4", "strategy=scaffold"))


def test_what_crosses_to_workers_and_actors_is_small_and_picklable(plan):
    for piece in (plan.federation_spec, plan.model_factory):
        assert pickle.loads(pickle.dumps(piece)) == piece
        assert len(pickle.dumps(piece)) < 4096
    # Ray ships the ClientApp with cloudpickle: it carries the two pieces, never the data or a model
    assert len(cloudpickle.dumps(plan.client_app())) < 20_000


def test_the_model_is_built_once_for_the_plan_and_once_per_client_process(tmp_path, monkeypatch):
    built = []
    build = fedsim.models.building.build
    monkeypatch.setattr(fedsim.models.building, "build", lambda *a, **k: built.append(1) or build(*a, **k))
    shared_model.cache_clear()
    execute(build_plan(compose_config("num_clients=3")), tmp_path / "a", quiet=True)
    assert len(built) == 2
    execute(build_plan(compose_config("num_clients=3")), tmp_path / "b", quiet=True)
    assert len(built) == 3  # the clients of this process keep their model


def test_a_bad_value_stops_the_plan_before_any_engine_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"^strategy.server_learning_rate must be greater than 0 \(got -1.0\).$"):
        build_plan(compose_config("strategy=scaffold", "strategy.server_learning_rate=-1.0"))


def test_messages_carry_the_recipe_the_seed_and_the_client_half(plan):
    train = plan.train_config(1)
    assert train["lr"] == 0.05 and train["local-epochs"] == 1 and train["batch-size"] == 10
    assert train["seed"] == 0
    assert train[CLIENT_HALF_KEY] == "strategies.scaffold.ScaffoldClient"
    assert dict(plan.evaluate_config()) == {"seed": 0, CLIENT_HALF_KEY: "strategies.scaffold.ScaffoldClient"}


def train_message(plan, **config) -> Message:
    set_task_identity(run_id=1, node_id=0)
    record = ConfigRecord(dict(plan.train_config(1)) | {"server-round": 1} | config)
    content = RecordDict({"arrays": plan.initial_arrays, "config": record})
    return Message(content, dst_node_id=5, message_type=MessageType.TRAIN)


def reply_arrays(plan, message: Message) -> dict[str, np.ndarray]:
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 2}, state=RecordDict(), run_config={})
    reply = plan.client_app()(message, context)
    assert not reply.has_error(), reply.error
    return {key: array.numpy() for key, array in reply.content["arrays"].items()}


def test_the_client_app_trains_as_the_message_says():
    plan = build_plan(compose_config("num_clients=4"))
    sent = {key: array.numpy() for key, array in plan.initial_arrays.items()}
    half = f"{ClientHalf.__module__}.{ClientHalf.__qualname__}"
    trained = reply_arrays(plan, train_message(plan, lr=0.1, **{CLIENT_HALF_KEY: half}))
    assert any(not np.array_equal(trained[key], sent[key]) for key in sent)
    # the same client with a message that asks for a learning rate of 0 sends the weights back unchanged
    unchanged = reply_arrays(plan, train_message(plan, lr=0.0, **{CLIENT_HALF_KEY: half}))
    for key in sent:
        np.testing.assert_array_equal(unchanged[key], sent[key])
    # the client half is the one the message names: FedProx's with a huge mu stays near the sent weights
    proximal = reply_arrays(
        plan, train_message(plan, lr=0.001, **{CLIENT_HALF_KEY: "strategies.fedprox.ProximalClient", "proximal-mu": 500.0})
    )
    plain = reply_arrays(plan, train_message(plan, lr=0.001, **{CLIENT_HALF_KEY: half}))
    distance = lambda arrays: sum(float(((arrays[k] - sent[k]) ** 2).sum()) for k in sent)  # noqa: E731
    assert distance(proximal) < distance(plain)


def test_flowers_own_strategies_whose_clients_need_a_client_half_are_refused():
    cfg = compose_config("strategy=fedprox", "strategy._target_=flwr.serverapp.strategy.FedProx", "~strategy.weighting")
    with pytest.raises(ConfigError, match=r"has no client half.*use strategies.fedprox.FedProx \(strategy=fedprox\)"):
        build_plan(cfg)
