"""Ditto: FedAvg for the global model, proximal personal models kept by each client, a run."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from torch.nn import functional as F

from fedsim.client_half import ClientHalf
from fedsim.training import evaluate
from strategies.ditto import LAMBDA_KEY, PERSONAL_MODEL_KEY, Ditto, DittoClient
from tests.strategies.helpers import (
    TAKE_ALL,
    assert_trains,
    client_reply,
    grid,
    per_client,
    record,
    replies_to,
    run_client,
    run_table,
    toy_data,
    toy_model,
    train_config,
    values,
)


def test_server_sends_lambda_and_averages_as_fedavg():
    strategy = Ditto(proximal_lambda=0.7, weighting="examples", **TAKE_ALL)
    messages = list(strategy.configure_train(1, record(w=[1, 2]), ConfigRecord(), grid(2)))
    assert all(m.content["config"][LAMBDA_KEY] == 0.7 for m in messages)
    contents = [client_reply(record(w=[0, 4]), 1), client_reply(record(w=[4, 0]), 3)]
    arrays, _ = strategy.aggregate_train(1, replies_to(messages, contents))
    np.testing.assert_allclose(values(arrays)["w"], [3, 1])


def ditto_message(model, lam, message_type="train", **config) -> Message:
    config = train_config(**config)
    config[LAMBDA_KEY] = lam
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config})
    return Message(content, dst_node_id=1, message_type=message_type)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_client_trains_its_personal_model_on_the_proximal_objective_and_the_global_model_as_fedavg(lam):
    lr, steps = 0.2, 3
    data = toy_data(4)
    personal_start = toy_model(seed=1)
    state = RecordDict()
    state[PERSONAL_MODEL_KEY] = ArrayRecord(personal_start.state_dict())
    w = [p.detach().clone() for p in toy_model().parameters()]

    message = ditto_message(toy_model(), lam, lr=lr, epochs=steps)
    content = run_client(DittoClient, message, state, data, toy_model())
    plain = run_client(ClientHalf, message, RecordDict(), data, toy_model())
    for key, value in values(plain["arrays"]).items():
        np.testing.assert_array_equal(values(content["arrays"])[key], value)

    reference = personal_start
    for _ in range(steps):  # full batch: explicit steps on L(v) + lambda/2 ||v - w||^2
        loss = F.cross_entropy(reference(data.train_x), data.train_y)
        loss = loss + lam / 2 * sum(((v - g) ** 2).sum() for v, g in zip(reference.parameters(), w))
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for v, g in zip(reference.parameters(), grads):
                v -= lr * g
    personal = values(state[PERSONAL_MODEL_KEY])
    for name, v in reference.named_parameters():
        np.testing.assert_allclose(personal[name], v.detach().numpy(), atol=1e-6)
    with torch.no_grad():
        start_distance = torch.sqrt(sum(((v - g) ** 2).sum() for v, g in zip(toy_model(seed=1).parameters(), w)))
    assert content["metrics"]["personal_distance"] == pytest.approx(float(start_distance), rel=1e-6)


def test_evaluation_reports_the_personal_model_next_to_the_global_one():
    data = toy_data(5)
    state = RecordDict()
    state[PERSONAL_MODEL_KEY] = ArrayRecord(toy_model(seed=2).state_dict())
    message = ditto_message(toy_model(), 0.1, message_type="evaluate")
    model = toy_model(seed=7)
    half = DittoClient(message, state, data, seed=0)
    half.load(model)
    metrics = half.evaluate(model)
    global_metrics = evaluate(toy_model(), data.eval_x, data.eval_y)
    personal_metrics = evaluate(toy_model(seed=2), data.eval_x, data.eval_y)
    assert metrics["loss"] == global_metrics["loss"] and metrics["accuracy"] == global_metrics["accuracy"]
    assert metrics["personal_loss"] == personal_metrics["loss"]
    assert metrics["personal_accuracy"] == personal_metrics["accuracy"]
    assert metrics["personal_loss"] != metrics["loss"]


def test_a_client_without_a_personal_model_yet_evaluates_the_global_one_as_its_own():
    data = toy_data(5)
    half = DittoClient(ditto_message(toy_model(), 0.1, message_type="evaluate"), RecordDict(), data, seed=0)
    model = toy_model(seed=7)
    half.load(model)
    metrics = half.evaluate(model)
    assert metrics["personal_loss"] == metrics["loss"]


def test_a_run_trains_the_fedavg_global_model_and_keeps_personal_models(tmp_path, fedavg_rounds):
    frame, rounds = run_table(tmp_path, "strategy=ditto")
    assert_trains(rounds)
    for column in ("centralized_loss", "centralized_accuracy", "federated_loss", "federated_accuracy"):
        np.testing.assert_array_equal(rounds[column].to_numpy(), fedavg_rounds[column].to_numpy())
    assert rounds.loc[1:, "federated_personal_accuracy"].between(0, 1).all()
    distances = per_client(frame, "train", "personal_distance")
    assert (distances.loc[1] == 0).all()  # v_k starts as the global model
    assert (distances.loc[2] > 0).all()  # and round 1's v_k was kept in every client's state


def test_under_local_dp_the_client_accountant_counts_the_personal_model_steps_too():
    from fedsim.privacy.local import ACCOUNTANT_KEY, DPSGD, batches_per_epoch
    from fedsim.privacy.accounting import load_history
    from tests.privacy.reference import reference_epsilon

    data, noise, delta, epochs, batch_size = toy_data(4, n=12), 1.3, 1e-5, 2, 4
    message = ditto_message(toy_model(), 0.1, epochs=epochs, batch_size=batch_size)
    dp = DPSGD(noise_multiplier=noise, max_grad_norm=1.0, delta=delta, accountant="rdp", secure_mode=False)
    for key, value in dp.to_config().items():
        message.content["config"][key] = value
    state = RecordDict()
    content = run_client(DittoClient, message, state, data, toy_model())

    steps_per_model = epochs * batches_per_epoch(12, batch_size)
    rate = 1 / batches_per_epoch(12, batch_size)
    assert sum(steps for _, _, steps in load_history(state, ACCOUNTANT_KEY)) == 2 * steps_per_model
    assert content["metrics"]["epsilon"] == pytest.approx(
        reference_epsilon([(noise, rate, 2 * steps_per_model)], delta, "rdp"), rel=1e-2
    )
    assert content["metrics"]["epsilon"] > reference_epsilon([(noise, rate, steps_per_model)], delta, "rdp")


def test_augmentation_reaches_the_personal_model():
    def flip(inputs, generator):  # deterministic: the same as training on flipped data
        return inputs.flip(-1)

    data = toy_data(6)
    flipped = type(data)(data.train_x.flip(-1), data.train_y, data.eval_x, data.eval_y)
    message = ditto_message(toy_model(), 0.3, lr=0.2, epochs=2, batch_size=4)
    results = {}
    for name, client_data, augment in (("augmented", data, flip), ("flipped data", flipped, None), ("plain", data, None)):
        state = RecordDict()
        half = DittoClient(message, state, client_data, seed=3, augment=augment)
        model = toy_model()
        half.load(model)
        results[name] = (half.start(model), values(state[PERSONAL_MODEL_KEY]))
    (augmented, personal), (flipped_metrics, flipped_personal) = results["augmented"], results["flipped data"]
    assert augmented["personal_loss"] == flipped_metrics["personal_loss"]
    for key in personal:
        np.testing.assert_array_equal(personal[key], flipped_personal[key])
    assert augmented["personal_loss"] != results["plain"][0]["personal_loss"]
