"""q-FedAvg: fair resource allocation (Li et al. 2020, q-FFL).

Li, Sanjabi, Beirami, Smith. "Fair Resource Allocation in Federated Learning." ICLR 2020.
"""

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp import strategy as flower

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from fedsim.flower_internals import (
    check_and_log_replies,
    compute_delta_and_h,
    get_local_weights,
    get_train_loss,
)
from fedsim.training import evaluate
from strategies.weighting import Weighted, check_weighting


class FairLossClient(ClientHalf):
    """q-FedAvg's client: report the global model's loss on the local training data,
    measured before training, as ``train_loss``; then train with any optimizer.

    The server reads each update as L (w - w_k) with L = 1 / ``client_learning_rate``,
    an estimate of the gradient that holds for plain SGD at that rate; with momentum,
    Adam or a learning-rate schedule it is the paper's step applied to another
    update, as in Flower's q-FedAvg, which assumes one client learning rate.
    """

    def start(self, model):
        return {"train_loss": evaluate(model, self.data.train_x, self.data.train_y)["loss"]}


class QFedAvg(flower.QFedAvg, Weighted):
    """Flower's q-FedAvg server, with its client half and ``weighting``.

    The server steps to w - sum_k p_k Delta_k / sum_k p_k h_k, Delta_k and h_k as
    Flower computes them from client k's model and ``train_loss``. ``uniform`` (p_k = 1)
    is the paper's and Flower's step: the paper draws clients with probability
    proportional to their data and sums their terms unweighted. ``examples`` (p_k = n_k)
    weights the sums instead, the same step in expectation when clients are drawn
    uniformly, as fedsim draws them. With q = 0 either is FedAvg of the same weighting.

    Parameters
    ----------
    q : float
        The fairness exponent; 0 is FedAvg's objective.
    client_learning_rate : float
        The clients' learning rate L = 1 / lr the server's step assumes.
    weighting : str
        ``uniform`` (p_k = 1) or ``examples`` (p_k = n_k).
    **fedavg_args
        Passed to Flower's ``QFedAvg``.
    """

    client_half = FairLossClient

    def __init__(self, *, q: float, client_learning_rate: float, weighting: str, **fedavg_args) -> None:
        require(q >= 0, f"strategy.q must be at least 0 (got {q}).")
        require(
            client_learning_rate > 0,
            f"strategy.client_learning_rate must be greater than 0 (got {client_learning_rate}).",
        )
        check_weighting(weighting)
        super().__init__(client_learning_rate=client_learning_rate, q=q, **fedavg_args)
        self.weighting = weighting

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid_replies, _ = check_and_log_replies(self, replies, is_train=True, validate=True)
        if not valid_replies:
            return None, None
        contents = [reply.content for reply in valid_replies]  # get_local_weights reads the replies themselves
        lipschitz = 1.0 / self.client_learning_rate
        keys = list(self.current_arrays.keys())
        global_weights = self.current_arrays.to_numpy_ndarrays(keep_input=False)  # as Flower's step does
        sum_delta, sum_h = None, 0.0
        for reply, weight in zip(valid_replies, self.client_weights(contents), strict=True):
            loss = get_train_loss(reply, self.train_loss_key)
            delta, h = compute_delta_and_h(global_weights, get_local_weights(reply), self.q, lipschitz, loss)
            delta = [weight * d for d in delta]
            sum_delta = delta if sum_delta is None else [total + d for total, d in zip(sum_delta, delta)]
            sum_h += weight * h
        stepped = {key: Array(np.asarray(w - d / sum_h)) for key, w, d in zip(keys, global_weights, sum_delta)}
        return ArrayRecord(stepped), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
