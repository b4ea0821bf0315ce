"""Epsilon of the Poisson-subsampled Gaussian mechanism from Google's dp-accounting, independent of Opacus."""

from dp_accounting import dp_event, pld, rdp


def reference_epsilon(steps: list[tuple[float, float, int]], delta: float, accountant: str) -> float:
    """Epsilon at ``delta`` after (noise multiplier, sampling rate, steps) runs: dp-accounting's
    RDP accountant for ``"rdp"``, its privacy-loss-distribution accountant for ``"prv"``."""
    ledger = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant()
    for noise, rate, count in steps:
        event = dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise))
        ledger.compose(dp_event.SelfComposedDpEvent(event, count))
    return ledger.get_epsilon(delta)
