"""FedNova: averaging of updates normalized by each client's number of local steps (Wang et al. 2020).

Wang, Liu, Liang, Joshi, Poor. "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization." NeurIPS 2020.
"""



from fedsim.client_half import ClientHalf
from strategies.arrays import GlobalModelUpdate, as_float64, example_shares, reported

STEPS_KEY = "num-steps"


class FedNova(GlobalModelUpdate):
    """FedNova's server for clients running plain local SGD.

    Client i took tau_i local steps (``num-steps`` in its reply) from the global model
    x to y_i. Its normalized update is d_i = (x - y_i) / tau_i, and the new global model
    x - tau_eff * sum_i p_i d_i with tau_eff = sum_i p_i tau_i and p_i = n_i / n, the
    client's share of the examples of the clients that replied. When every client takes
    the same number of steps this is FedAvg; otherwise a client that ran more steps no
    longer pulls the model towards its own optimum in proportion to its extra work.

    The client half is plain local training: fedsim's clients report their steps.

    Parameters
    ----------
    **fedavg_args
        Passed to ``FedAvg``.
    """

    client_half = ClientHalf

    def next_global(self, x, contents):
        shares = example_shares(contents, self.weighted_by_key)
        steps = [reported(content, STEPS_KEY) for content in contents]
        tau_eff = sum(share * tau for share, tau in zip(shares, steps))
        normalized = [
            {key: (x[key] - y) / tau for key, y in as_float64(content[self.arrayrecord_key]).items()}
            for content, tau in zip(contents, steps)
        ]
        return {key: x[key] - tau_eff * sum(share * d[key] for share, d in zip(shares, normalized)) for key in x}
