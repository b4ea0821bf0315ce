"""FedNova: averaging of updates normalized by each client's local steps (Wang et al. 2020).

Wang, Liu, Liang, Joshi, Poor. "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization." NeurIPS 2020.
"""

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from fedsim.optimizers import OPTIMIZER_STATE_KEY, SGD
from strategies.arrays import GlobalModelUpdate, as_float64
from strategies.weighting import reported

STEPS_KEY = "num-steps"
FACTOR_KEY = "normalizing_factor"


def normalizing_factor(steps: int, momentum: float, dampening: float = 0.0, nesterov: bool = False) -> float:
    """||a_i||_1: how many gradients' worth a client's ``steps`` SGD steps move it, as FedNova normalizes by.

    After tau steps of torch's SGD at learning rate lr a client has moved by lr sum_t a_t
    g_t, with g_t the gradient (weight decay included) of step t. Plain SGD: a_t = 1, so
    ||a||_1 = tau. Heavy-ball momentum rho (buffer b <- rho b + g, step lr b) gives
    a_t = (1 - rho^(tau - t + 1)) / (1 - rho) and, as Wang et al. (2020) derive it for
    local momentum SGD and Flower's niid_bench baseline computes it (``train_fednova``
    in baselines/niid_bench/niid_bench/models.py),
    ||a||_1 = [tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho). Dampening d scales
    every gradient after the first by 1 - d in the buffer (torch does not damp the
    first); Nesterov momentum steps on g + rho b, adding rho times the heavy-ball sum.
    """
    tau, rho = steps, momentum
    if rho == 0:
        return float(tau)

    def buffer_sum(n: int) -> float:  # sum over m = 1..n of (1 - rho^m) / (1 - rho)
        return (n - rho * (1 - rho**n) / (1 - rho)) / (1 - rho)

    first = (1 - rho**tau) / (1 - rho)  # the first gradient's weight, never damped
    heavy_ball = first + (1 - dampening) * buffer_sum(tau - 1)
    return tau + rho * heavy_ball if nesterov else heavy_ball


class FedNovaClient(ClientHalf):
    """FedNova's client: plain local training with SGD, reporting ||a_i||_1 (``normalizing_factor``).

    The factor follows from the steps the client took and its message's SGD momentum,
    dampening and Nesterov setting (``normalizing_factor``). Other optimizers are
    refused before training, and so is momentum kept between rounds: the factor assumes
    each round starts with an empty momentum buffer.
    """

    @classmethod
    def check_optimizer(cls, optimizer):
        require(
            isinstance(optimizer, SGD),
            "strategy=fednova needs optimizer=sgd (with or without momentum), the optimizer its normalized "
            f"averaging is derived for (got {type(optimizer).__name__}).",
        )
        require(
            optimizer.momentum == 0 or not optimizer.keep_state,
            "strategy=fednova needs optimizer.keep_state=false with momentum: its normalizing factor assumes "
            "every round starts with an empty momentum buffer.",
        )

    def train(self, model, correct_gradients, correct_weights=None, optimizer_state_key=OPTIMIZER_STATE_KEY):
        metrics = super().train(model, correct_gradients, correct_weights, optimizer_state_key)
        sgd = self.recipe.optimizer
        factor = normalizing_factor(int(metrics[STEPS_KEY]), sgd.momentum, sgd.dampening, sgd.nesterov)
        return metrics | {FACTOR_KEY: factor}


class FedNova(GlobalModelUpdate):
    """FedNova's server for clients running local SGD, with or without momentum.

    Client i moved from the global model x to y_i in local steps worth ||a_i||_1
    gradients (``normalizing_factor`` in its reply: its number of steps tau_i for plain
    SGD; see ``normalizing_factor`` for momentum). Its normalized update is
    d_i = (x - y_i) / ||a_i||_1, and the new global model x - tau_eff * sum_i p_i d_i
    with tau_eff = sum_i p_i ||a_i||_1 and p_i the client's
    weight (``weighting``): n_i / n, its share of the examples of the clients that
    replied, or 1 / |S|. When every client takes the same number of steps this is
    FedAvg of the same weighting; otherwise a client that ran more steps no
    longer pulls the model towards its own optimum in proportion to its extra work.

    The client half (``FedNovaClient``) trains as any client does and reports its
    factor; it accepts ``optimizer=sgd`` only.

    Parameters
    ----------
    weighting : str
        ``examples`` or ``uniform``: p_i.
    **fedavg_args
        Passed to ``FedAvg``.
    """

    client_half = FedNovaClient

    def next_global(self, x, contents):
        shares = self.shares(contents)
        factors = [reported(content, FACTOR_KEY) for content in contents]
        tau_eff = sum(share * factor for share, factor in zip(shares, factors))
        normalized = [
            {key: (x[key] - y) / factor for key, y in as_float64(content[self.arrayrecord_key]).items()}
            for content, factor in zip(contents, factors)
        ]
        return {key: x[key] - tau_eff * sum(share * d[key] for share, d in zip(shares, normalized)) for key in x}
