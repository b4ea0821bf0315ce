"""Privacy accounting for the Poisson-subsampled Gaussian mechanism: epsilon spent, noise for a budget."""

import functools
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from flwr.app import ConfigRecord, RecordDict

from fedsim.config import ConfigError

# One (noise multiplier, sampling rate, steps) triple per run of identical steps,
# the history format of Opacus's accountants.
History = list[tuple[float, float, int]]


def epsilon_spent(history: History, delta: float, accountant: str) -> float:
    """Epsilon at ``delta`` after the Poisson-subsampled Gaussian steps of ``history``.

    ``accountant`` is ``"rdp"`` (Renyi DP, Mironov 2017) or ``"prv"`` (privacy loss
    random variables, Gopi et al. 2021), both Opacus's. Zero noise releases the data
    as is: epsilon is infinite.
    """
    if not history:
        return 0.0
    if any(noise == 0 for noise, _, _ in history):
        return math.inf
    with _no_order_notice():
        return _epsilon_spent(history, delta, accountant)


def _epsilon_spent(history: History, delta: float, accountant: str) -> float:
    if accountant == "rdp":
        from opacus.accountants import RDPAccountant
        from opacus.accountants.analysis.rdp import get_privacy_spent

        # RDP composes by addition, so a run of identical steps costs steps x one step:
        # one step per (rate, noise) is computed once, not once per report.
        rdp = sum(steps * _rdp_of_one_step(rate, noise) for noise, rate, steps in history)
        epsilon, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
        return float(epsilon)
    from opacus.accountants import create_accountant

    prv = create_accountant(mechanism=accountant)
    prv.history = list(history)
    return float(prv.get_epsilon(delta=delta))


@functools.lru_cache(maxsize=256)
def _rdp_of_one_step(rate: float, noise: float):
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    return compute_rdp(q=rate, noise_multiplier=noise, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS)


@functools.lru_cache(maxsize=32)
def noise_for_budget(target_epsilon: float, delta: float, rate: float, steps: int, accountant: str, setting: str) -> float:
    """The smallest noise multiplier (to Opacus's search tolerance, 0.01 in epsilon)
    whose ``steps`` steps at sampling ``rate`` spend at most ``target_epsilon`` at ``delta``.

    ``setting`` names the config key in the error raised when no noise reaches the target.
    """
    from opacus.accountants.utils import MAX_SIGMA, get_noise_multiplier

    try:
        with _no_order_notice():  # the search tries noise far above the answer
            noise = get_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=rate, steps=steps, accountant=accountant
            )
        return float(noise)
    except ValueError as error:
        raise ConfigError(
            f"{setting}={target_epsilon} cannot be reached in {steps} steps at sampling rate {rate:.4g}: "
            f"even a noise multiplier of {MAX_SIGMA:g} spends more; raise it or take fewer steps."
        ) from error


@contextmanager
def _no_order_notice() -> Iterator[None]:
    """Hide Opacus's notice that the best Renyi order is the largest (or smallest) it tries.

    The RDP accountant converts to (epsilon, delta) at the best of Opacus's default
    orders (1.1 to 63); with much noise or few steps the best one is the largest, and
    Opacus suggests more orders. Epsilon is then still a valid upper bound, a little
    above the tightest one, and the user cannot choose the orders: nothing to act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Optimal order is the (largest|smallest) alpha", UserWarning)
        yield


def load_history(state: RecordDict, key: str) -> History:
    """The accountant history kept under ``key`` in a node's state (empty before the first round)."""
    if key not in state:
        return []
    record = state[key]
    return list(zip(map(float, record["noise"]), map(float, record["rate"]), map(int, record["steps"])))


def store_history(state: RecordDict, key: str, history: History) -> None:
    """Keep an accountant history in a node's state, so that the next round continues it."""
    state[key] = ConfigRecord(
        {
            "noise": [float(noise) for noise, _, _ in history],
            "rate": [float(rate) for _, rate, _ in history],
            "steps": [int(steps) for _, _, steps in history],
        }
    )
