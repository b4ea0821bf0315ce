"""Ditto: personal models tied to the global one by a proximal term (Li et al. 2021).

Li, Hu, Beirami, Smith. "Ditto: Fair and Robust Federated Learning Through
Personalization." ICML 2021.
"""

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from strategies.client_state import norm, store, trainable_weights
from strategies.fedavg import FedAvg

LAMBDA_KEY = "ditto-lambda"
PERSONAL_MODEL_KEY = "ditto-personal-model"
PERSONAL_OPTIMIZER_KEY = "ditto-personal-optimizer-state"


class DittoClient(ClientHalf):
    """Ditto's client: trains the global model as FedAvg does and a personal model v_k.

    Before the usual local training of the global model w, the client trains its
    personal model v_k (kept in the node's state; the global model of its first round
    to start with) for the same local epochs, with the same data order, on
    L_k(v) + lambda/2 ||v - w||^2. Only the global model goes back to the server.
    Both models train through the client's one training function, each with a fresh
    optimizer of the message's kind: under local DP both run DP-SGD on the client's data
    and the client's accountant counts the steps of both; augmentation reaches both; with
    ``optimizer.keep_state`` each model keeps its own optimizer state. The proximal
    term's gradient lambda (v - w) joins the personal model's gradient before the
    optimizer's step, so momentum and Adam see the gradient of Ditto's personal
    objective.

    Training reports the personal model's ``personal_loss`` and ``personal_accuracy``
    over the examples seen, and ``personal_distance``, ||v_k - w|| at the start of
    the round; evaluation reports the personal model's ``personal_loss`` and
    ``personal_accuracy`` next to the global model's ``loss`` and ``accuracy``.
    """

    def start(self, model):
        lam = float(self.config[LAMBDA_KEY])
        global_state = {key: tensor.clone() for key, tensor in model.state_dict().items()}
        global_weights = list(trainable_weights(model).values())
        if PERSONAL_MODEL_KEY in self.state:
            model.load_state_dict(self.state[PERSONAL_MODEL_KEY].to_torch_state_dict())
        distance = norm({name: v - global_state[name] for name, v in trainable_weights(model).items()})

        def proximal(parameters, gradients):
            return [g + lam * (v.detach() - w) for v, g, w in zip(parameters, gradients, global_weights)]

        personal = self.train(model, proximal, optimizer_state_key=PERSONAL_OPTIMIZER_KEY)
        store(self.state, PERSONAL_MODEL_KEY, model.state_dict())
        model.load_state_dict(global_state)
        return {
            "personal_loss": personal["loss"],
            "personal_accuracy": personal["accuracy"],
            "personal_distance": distance,
        }

    def evaluate(self, model):
        metrics = super().evaluate(model)
        # A client that has not trained yet would start its personal model from this global one.
        if PERSONAL_MODEL_KEY in self.state:
            model.load_state_dict(self.state[PERSONAL_MODEL_KEY].to_torch_state_dict())
        personal = super().evaluate(model)
        return metrics | {"personal_loss": personal["loss"], "personal_accuracy": personal["accuracy"]}


class Ditto(FedAvg):
    """Ditto's server: FedAvg; lambda travels to the clients as ``ditto-lambda``.

    Parameters
    ----------
    proximal_lambda : float
        lambda, how strongly personal models are pulled towards the global model:
        0 trains purely local models; large values give back the global model.
    weighting : str
        ``examples`` or ``uniform``: the clients' weights in the global model's average.
    **fedavg_args
        Passed to ``FedAvg``.
    """

    client_half = DittoClient

    def __init__(self, *, proximal_lambda: float, weighting: str, **fedavg_args) -> None:
        require(proximal_lambda >= 0, f"strategy.proximal_lambda must be at least 0 (got {proximal_lambda}).")
        super().__init__(weighting=weighting, **fedavg_args)
        self.proximal_lambda = proximal_lambda

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[LAMBDA_KEY] = self.proximal_lambda
        return super().configure_train(server_round, arrays, config, grid)
