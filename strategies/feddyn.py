"""FedDyn: federated learning with dynamic regularization (Acar et al. 2021).

Acar, Zhao, Matas, Mattina, Whatmough, Saligrama. "Federated Learning Based on
Dynamic Regularization." ICLR 2021.
"""

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from strategies.arrays import GlobalModelUpdate, as_float64
from strategies.client_state import norm, store, stored_or_zeros, trainable_weights

ALPHA_KEY = "feddyn-alpha"
GRADIENT_KEY = "feddyn-gradient"


class FedDynClient(ClientHalf):
    """FedDyn's client: minimize L_k(w) - <g_k, w> + alpha/2 ||w - x||^2.

    x is the global model of the message and g_k this client's estimate of the
    gradient of L_k at its previous local model, kept in the node's state (zero before
    its first round). Each optimizer step uses grad L_k(w) - g_k + alpha (w - x), the
    gradient of the local objective, so momentum and Adam work on it; after training
    at w = theta_k the first-order condition of the local problem gives the new
    estimate g_k <- g_k - alpha (theta_k - x), whichever optimizer approached it (with
    weight decay, L_k includes its penalty).

    Reports ``gradient_term_norm``, the norm of g_k at the start of the round.
    """

    def start(self, model):
        self.alpha = float(self.config[ALPHA_KEY])
        self.global_weights = trainable_weights(model)
        self.gradient = stored_or_zeros(self.state, GRADIENT_KEY, self.global_weights)
        self.terms = [(self.gradient[name], x) for name, x in self.global_weights.items()]
        return {"gradient_term_norm": norm(self.gradient)}

    def correct_gradients(self, parameters, gradients):
        return [
            gradient - previous + self.alpha * (parameter.detach() - x)
            for parameter, gradient, (previous, x) in zip(parameters, gradients, self.terms)
        ]

    def finish(self, model, metrics):
        trained = trainable_weights(model)
        store(
            self.state,
            GRADIENT_KEY,
            {name: self.gradient[name] - self.alpha * (trained[name] - x) for name, x in self.global_weights.items()},
        )
        return {}


class FedDyn(GlobalModelUpdate):
    """FedDyn's server: h <- h - alpha/N sum_k (theta_k - x), then x <- mean_k theta_k - h/alpha.

    theta_k are the models of the clients that replied, averaged by ``weighting``:
    with equal weights as in the paper (``uniform``), or by their examples; N is the
    number of clients in the federation and h (zero at first) the server's running
    estimate of the plain mean of all clients' g_k, whatever the weighting (as
    SCAFFOLD's c). alpha travels to the clients as ``feddyn-alpha`` in the train config.

    Every array of the model is treated as a trained parameter; for models with
    BatchNorm running statistics use ``fedbn``.

    Parameters
    ----------
    num_clients : int
        N, the number of clients in the federation (the strategy is shown only the
        sampled ones).
    alpha : float
        Weight of the dynamic regularizer (greater than 0).
    weighting : str
        ``uniform`` (the paper's) or ``examples``: the weights of the mean of theta_k.
    **fedavg_args
        Passed to ``FedAvg``.
    """

    client_half = FedDynClient
    checkpointed = (*GlobalModelUpdate.checkpointed, "h")

    def __init__(self, *, num_clients: int, alpha: float, weighting: str, **fedavg_args) -> None:
        require(alpha > 0, f"strategy.alpha must be greater than 0 (got {alpha}).")
        super().__init__(weighting=weighting, **fedavg_args)
        self.num_clients = num_clients
        self.alpha = alpha
        self.h: dict[str, np.ndarray] | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.h is None:
            self.h = {key: np.zeros(array.shape) for key, array in arrays.items()}
        config[ALPHA_KEY] = self.alpha
        return super().configure_train(server_round, arrays, config, grid)

    def next_global(self, x, contents):
        trained = [as_float64(content[self.arrayrecord_key]) for content in contents]
        weights = self.client_weights(contents)
        total = sum(weights)
        next_x = {}
        for key in x:
            self.h[key] -= self.alpha / self.num_clients * sum(theta[key] - x[key] for theta in trained)
            mean = sum(weight * theta[key] for weight, theta in zip(weights, trained)) / total
            next_x[key] = mean - self.h[key] / self.alpha
        return next_x
