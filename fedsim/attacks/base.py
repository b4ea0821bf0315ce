"""The base of attacks (the ``attack`` config group), and no attack."""

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from flwr.serverapp.strategy import Strategy

from fedsim.attacks.adversaries import Adversaries, num_malicious
from fedsim.attacks.client import ClientAttack
from fedsim.config.checks import FedsimWarning, require

if TYPE_CHECKING:
    from fedsim.data import Federation
    from fedsim.settings import RunSettings


class Attack:
    """An attack option: ``fraction`` of the federation is malicious for the whole run.

    Which partitions are malicious is drawn from the run's seed alone
    (``fedsim.attacks.adversaries``), so every strategy faces the same adversaries.
    Subclasses say what a malicious client does (``client_attack``: client-side, in its
    training message) or what the server-side adversary makes of the round's replies
    (``craft_update``: ALIE, IPM), and may add a centralized metric (``triggered_test_set``).

    Parameters
    ----------
    fraction : float
        Share of the federation's clients (num_clients) that is malicious, in [0, 1).
    """

    server_side = False  # True: the server-side adversary crafts the malicious replies (``craft_update``)

    def __init__(self, *, fraction: float) -> None:
        require(0 <= fraction < 1, f"attack.fraction must be in [0, 1) (got {fraction}).")
        self.fraction = fraction

    def prepare(self, settings: "RunSettings", federation: "Federation", strategy: Strategy) -> None:
        """Check what needs the data and the strategy, before any engine starts.

        Warns (one line) when a round may hold more attackers than a robust strategy's
        ``num_malicious_nodes`` (Krum, Multi-Krum, Bulyan) is configured to tolerate.
        """
        tolerated = getattr(strategy, "num_malicious_nodes", None)
        malicious = num_malicious(self.fraction, settings.num_clients)
        most = min(malicious, settings.clients_per_round)
        if tolerated is not None and most > tolerated:
            warnings.warn(
                f"attack.fraction={self.fraction} makes {malicious} of the num_clients={settings.num_clients} clients "
                f"malicious, up to {most} in a round of clients_per_round={settings.clients_per_round}, more than "
                f"strategy.num_malicious_nodes={tolerated} tolerates.",
                FedsimWarning,
                stacklevel=2,
            )

    def client_attack(self, seed: int, server_round: int, partition: int) -> ClientAttack | None:
        """What malicious client ``partition`` does in ``server_round`` (None: it trains honestly)."""
        return None

    def craft_update(self, benign: list[np.ndarray], num_replies: int, num_attackers: int) -> np.ndarray:
        """A server-side attack's update for one array, which every malicious reply then carries.

        ``benign`` are the honest updates (trained - sent) of the round's benign replies,
        in partition order; ``num_replies`` counts the round's replies, ``num_attackers`` the malicious ones.
        """
        raise NotImplementedError

    def triggered_test_set(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Inputs and labels whose accuracy is the attack's success rate, made from the test split (None: no such rate)."""
        return None

    def wrap(self, strategy: Strategy, node_partitions: dict[int, int], seed: int) -> Strategy:
        """``strategy`` inside the wrapper that tells malicious clients to attack and applies server-side attacks."""
        return Adversaries(strategy, self, node_partitions, seed)


class NoAttack(Attack):
    """No attack: every client is honest."""

    def __init__(self) -> None:
        super().__init__(fraction=0.0)

    def wrap(self, strategy, node_partitions, seed):
        return strategy
