"""SCAFFOLD: local SGD corrected by control variates (Karimireddy et al. 2020, option II).

Karimireddy, Kale, Mohri, Reddi, Stich, Suresh. "SCAFFOLD: Stochastic Controlled
Averaging for Federated Learning." ICML 2020.
"""

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from fedsim.resident import resident_record
from strategies.arrays import GlobalModelUpdate, as_float64, to_record
from strategies.client_state import norm, store, stored_or_zeros, trainable_weights

SERVER_CONTROL_KEY = "scaffold-server-control"
CONTROL_DELTA_KEY = "scaffold-control-delta"
CLIENT_CONTROL_KEY = "scaffold-client-control"


class ScaffoldClient(ClientHalf):
    """SCAFFOLD's client: after every optimizer step at learning rate lr, w <- w - lr (c - c_i).

    c is the server control variate sent in the message, c_i this client's control
    variate, kept in the node's state (zero before its first round). With plain SGD a
    step is then w - lr (g - c_i + c), the paper's corrected step. With momentum or
    Adam the optimizer steps on the gradient g alone and the correction follows it,
    outside the momentum buffer and Adam's moments, as Flower's niid_bench baseline
    applies it (its ``ScaffoldOptimizer.step_custom``: the optimizer's step, then
    p <- p - lr (c - c_i)).

    After K local steps at the round's learning rate lr from the global model x to y_i,
    option II of the paper sets c_i+ = c_i - c + (x - y_i) / (K lr), with the steps the
    client actually took (fewer for a straggler; Poisson batches under local DP) and the
    rate its message gave (the round's, under a schedule); the reply carries c_i+ - c_i.
    With momentum rho the displacement x - y_i holds the gradients amplified by up to
    1 / (1 - rho), so c_i, and c with it, carry that amplification; the correction
    c - c_i it steers by carries the same, and cancels the drift of the amplified
    gradients (with constant gradients g_i a round moves the model by lr times the
    momentum's amplification of the mean of the g_i, for every client). With Adam,
    c_i is the mean step direction per unit of lr rather than a gradient.

    Reports ``control_variate_norm``, the norm of c_i at the start of the round.
    """

    def start(self, model):
        self.global_weights = trainable_weights(model)
        server_control = self.message.content[SERVER_CONTROL_KEY].to_torch_state_dict()
        self.server_control = {name: server_control[name].to(x.device) for name, x in self.global_weights.items()}
        self.client_control = stored_or_zeros(self.state, CLIENT_CONTROL_KEY, self.global_weights)
        self.correction = [self.server_control[name] - self.client_control[name] for name in self.global_weights]
        return {"control_variate_norm": norm(self.client_control)}

    def correct_weights(self, parameters, lr):
        for parameter, correction in zip(parameters, self.correction):
            parameter.sub_(correction, alpha=lr)

    def finish(self, model, metrics):
        step_length = metrics["num-steps"] * float(self.config["lr"])
        trained = trainable_weights(model)
        new_control = {
            name: self.client_control[name] - self.server_control[name] + (x - trained[name]) / step_length
            for name, x in self.global_weights.items()
        }
        store(self.state, CLIENT_CONTROL_KEY, new_control)
        delta = {name: new_control[name] - self.client_control[name] for name in new_control}
        return {CONTROL_DELTA_KEY: resident_record(delta)}


class Scaffold(GlobalModelUpdate):
    """SCAFFOLD's server: x += eta_g * mean_i (y_i - x), c += (1/N) sum_i (c_i+ - c_i).

    The model update averages the clients' updates by ``weighting``: by their number
    of examples, or uniformly (the paper's plain mean), so with eta_g = 1 and zero
    control variates a round is exactly FedAvg's of the same weighting. The control
    variate update sums over the |S| clients that replied and divides by the N clients
    of the federation, whatever the weighting, keeping c the plain mean of all
    clients' c_i. The server sends c to every sampled client next to the global model
    (``scaffold-server-control``); the clients reply with c_i+ - c_i
    (``scaffold-control-delta``). Control variates of arrays that are not trainable
    parameters (buffers) stay zero.

    Parameters
    ----------
    num_clients : int
        N, the number of clients in the federation (the strategy is shown only the
        sampled ones).
    server_learning_rate : float
        eta_g, the global step size (greater than 0).
    weighting : str
        ``examples`` or ``uniform``: the clients' weights in the model update.
    **fedavg_args
        Passed to ``FedAvg``.
    """

    client_half = ScaffoldClient
    replies_carry_extra_arrays = True  # the control-variate deltas
    checkpointed = (*GlobalModelUpdate.checkpointed, "server_control")

    def __init__(self, *, num_clients: int, server_learning_rate: float, weighting: str, **fedavg_args) -> None:
        require(
            server_learning_rate > 0,
            f"strategy.server_learning_rate must be greater than 0 (got {server_learning_rate}).",
        )
        super().__init__(weighting=weighting, **fedavg_args)
        self.num_clients = num_clients
        self.server_learning_rate = server_learning_rate
        self.server_control: dict[str, np.ndarray] | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.server_control is None:
            self.server_control = {key: np.zeros(array.shape) for key, array in arrays.items()}
        control = to_record(self.server_control, like=arrays)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for message in messages:
            message.content[SERVER_CONTROL_KEY] = control
        return messages

    def next_global(self, x, contents):
        shares = self.shares(contents)
        trained = [as_float64(content[self.arrayrecord_key]) for content in contents]
        mean_update = {key: sum(share * (y[key] - x[key]) for share, y in zip(shares, trained)) for key in x}
        for content in contents:
            for key, delta in as_float64(content[CONTROL_DELTA_KEY]).items():
                self.server_control[key] += delta / self.num_clients
        return {key: x[key] + self.server_learning_rate * mean_update[key] for key in x}
