"""Fixtures of the strategy tests: one FedAvg run to compare the algorithms' runs against."""

import pytest

from tests.strategies.helpers import run_table


@pytest.fixture(scope="session")
def fedavg_rounds(tmp_path_factory):
    return run_table(tmp_path_factory.mktemp("fedavg"), "strategy=fedavg")[1]
