"""Byzantine-robust aggregation: Flower's trimmed mean, Krum, Multi-Krum and Bulyan, with their arguments checked.

Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates." ICML 2018. Blanchard, El Mhamdi, Guerraoui, Stainer.
"Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent." NeurIPS 2017.
El Mhamdi, Guerraoui, Rouault. "The Hidden Vulnerability of Distributed Learning in
Byzantium." ICML 2018.

The trimmed mean, Krum and Bulyan weight no client, so they take no ``weighting``:
the trimmed mean and Bulyan's last step are unweighted coordinate-wise means, Krum
keeps one client's model. Multi-Krum averages the models it selects by ``weighting``.
"""

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp import strategy as flower

from fedsim.config.checks import require
from fedsim.flower_internals import select_multikrum
from strategies.weighting import Weighted, check_weighting, train_contents

KRUM_MINIMUM = "2 * num_malicious_nodes + 3 (Blanchard et al. 2017)"


def _require_tolerable(num_malicious_nodes: int, clients_per_round: int, minimum: int, formula: str) -> None:
    require(num_malicious_nodes >= 0, f"strategy.num_malicious_nodes must be at least 0 (got {num_malicious_nodes}).")
    require(
        clients_per_round >= minimum,
        f"strategy.num_malicious_nodes={num_malicious_nodes} needs clients_per_round >= {formula} = {minimum} "
        f"(got {clients_per_round}).",
    )


class FedTrimmedAvg(flower.FedTrimmedAvg):
    """Coordinate-wise trimmed mean; ``beta``, the share trimmed at each end, in [0, 0.5)."""

    def __init__(self, *, beta: float, **fedavg_args) -> None:
        require(0 <= beta < 0.5, f"strategy.beta (the trimmed fraction) must be in [0, 0.5) (got {beta}).")
        super().__init__(beta=beta, **fedavg_args)


class Krum(flower.Krum):
    """Krum, tolerating ``num_malicious_nodes`` f of the ``clients_per_round`` n (n >= 2f + 3)."""

    def __init__(self, *, num_malicious_nodes: int, clients_per_round: int, **fedavg_args) -> None:
        _require_tolerable(num_malicious_nodes, clients_per_round, 2 * num_malicious_nodes + 3, KRUM_MINIMUM)
        super().__init__(num_malicious_nodes=num_malicious_nodes, **fedavg_args)


class MultiKrum(flower.MultiKrum, Weighted):
    """Multi-Krum: Krum's scores, then the mean of the ``num_nodes_to_select`` best (1 <= m <= n - f).

    ``num_nodes_to_select`` None selects m = n - f, Blanchard et al.'s choice. The mean
    of the selected models follows ``weighting``: ``uniform`` is Blanchard et al.'s plain
    mean, ``examples`` Flower's.
    """

    def __init__(
        self,
        *,
        num_malicious_nodes: int,
        num_nodes_to_select: int | None,
        weighting: str,
        clients_per_round: int,
        **fedavg_args,
    ) -> None:
        _require_tolerable(num_malicious_nodes, clients_per_round, 2 * num_malicious_nodes + 3, KRUM_MINIMUM)
        most = clients_per_round - num_malicious_nodes
        num_nodes_to_select = most if num_nodes_to_select is None else num_nodes_to_select
        require(
            1 <= num_nodes_to_select <= most,
            f"strategy.num_nodes_to_select must be between 1 and clients_per_round - num_malicious_nodes = "
            f"{most} (got {num_nodes_to_select}).",
        )
        check_weighting(weighting)
        super().__init__(
            num_malicious_nodes=num_malicious_nodes, num_nodes_to_select=num_nodes_to_select, **fedavg_args
        )
        self.weighting = weighting

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        contents = train_contents(self, replies)
        if not contents:
            return None, None
        selected = select_multikrum(contents, self.num_malicious_nodes, self.num_nodes_to_select)
        return self.average(selected), self.train_metrics_aggr_fn(selected, self.weighted_by_key)


class Bulyan(flower.Bulyan):
    """Bulyan, tolerating ``num_malicious_nodes`` f of the ``clients_per_round`` n (n >= 4f + 3)."""

    def __init__(self, *, num_malicious_nodes: int, clients_per_round: int, **fedavg_args) -> None:
        _require_tolerable(
            num_malicious_nodes, clients_per_round, 4 * num_malicious_nodes + 3,
            "4 * num_malicious_nodes + 3 (El Mhamdi et al. 2018)",
        )
        super().__init__(num_malicious_nodes=num_malicious_nodes, **fedavg_args)
