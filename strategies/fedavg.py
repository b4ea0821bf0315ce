"""FedAvg: the weighted mean of the clients' models (McMahan et al. 2017).

McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning of
Deep Networks from Decentralized Data." AISTATS 2017.
"""

from strategies.weighting import Weighted, check_weighting


class FedAvg(Weighted):
    """Flower's FedAvg, averaging the clients' models by ``weighting``.

    Parameters
    ----------
    weighting : str
        ``examples`` weights each client by its number of training examples (the
        paper's n_k / n); ``uniform`` weights every client that replied equally.
    **fedavg_args
        Passed to Flower's ``FedAvg``.
    """

    def __init__(self, *, weighting: str, **fedavg_args) -> None:
        check_weighting(weighting)
        super().__init__(**fedavg_args)
        self.weighting = weighting
