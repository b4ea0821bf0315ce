"""Server-side attacks by an omniscient adversary that sees the round's benign updates: ALIE and IPM.

Both papers assume the attackers know the benign clients' updates, so fedsim applies
them on the server: ``fedsim.attacks.adversaries.Adversaries`` gives ``craft_update``
the round's benign updates (trained - sent, per array, in partition order) and every
malicious reply then carries sent + the crafted update. The malicious clients train
honestly first; in a round without a benign reply they send that honest update.
"""

import math
from statistics import NormalDist

import numpy as np

from fedsim.attacks.base import Attack
from fedsim.config.checks import require


def alie_z(num_clients: int, num_malicious: int) -> float:
    """z_max of Baruch et al. (2019) for n clients of which f are malicious.

    s = floor(n / 2 + 1) - f benign clients must be won over, and z = Phi^-1((n - s) / n),
    Phi the standard normal's distribution function; s is kept at least 1 (attackers who
    are already a majority use the z for s = 1). Needs n >= 2.
    """
    needed = max(num_clients // 2 + 1 - num_malicious, 1)
    return NormalDist().inv_cdf((num_clients - needed) / num_clients)


class ALIE(Attack):
    """A Little Is Enough (Baruch, Baruch, Goldberg 2019; ``attack=alie``).

    Every malicious reply carries mean - z * std of the benign updates, coordinate-wise
    (the population std over the round's benign replies). A small step against the
    benign direction that stays within the spread of benign updates, so that
    statistics-based defences (Krum, trimmed mean, median, Bulyan) keep it.

    Parameters
    ----------
    fraction : float
        As for every attack.
    z : float | None
        The number of standard deviations; null computes the paper's z_max each round
        from the round's n replies and f malicious ones (``alie_z``). At least 0.
    """

    server_side = True

    def __init__(self, *, fraction: float, z: float | None) -> None:
        super().__init__(fraction=fraction)
        require(
            z is None or (math.isfinite(z) and z >= 0),
            f"attack.z must be null (the paper's z from n and f) or a number at least 0 (got {z}).",
        )
        self.z = z

    def craft_update(self, benign, num_replies, num_attackers):
        stacked = np.stack(benign).astype(np.float64)
        z = alie_z(num_replies, num_attackers) if self.z is None else self.z
        return stacked.mean(axis=0) - z * stacked.std(axis=0)


class IPM(Attack):
    """Inner-product manipulation (Xie, Koyejo, Gupta 2020, "Fall of Empires"; ``attack=ipm``).

    Every malicious reply carries -epsilon times the mean of the benign updates, so that
    the aggregate's inner product with the true update turns negative: a small epsilon
    stays close to the benign updates (Krum, the median keep it), a large one outweighs
    them in a mean.

    Parameters
    ----------
    fraction : float
        As for every attack.
    epsilon : float
        The multiplier, greater than 0.
    """

    server_side = True

    def __init__(self, *, fraction: float, epsilon: float) -> None:
        super().__init__(fraction=fraction)
        require(
            math.isfinite(epsilon) and epsilon > 0,
            f"attack.epsilon must be greater than 0 and finite (got {epsilon}).",
        )
        self.epsilon = epsilon

    def craft_update(self, benign, num_replies, num_attackers):
        return -self.epsilon * np.stack(benign).astype(np.float64).mean(axis=0)
