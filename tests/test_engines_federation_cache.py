"""The clients' tensors are cached least-recently-used within a byte budget."""

from fedsim.data import Federation, build_partitioner
from tests.conftest import compose_config
from tests.data.test_partitioners import identity_data

# identity_data(203) over 4 IID clients: sizes 51, 51, 51, 50; an example is one float32
# feature (4 bytes) and one int64 label (8 bytes), so a client of 51 holds 612 bytes.
CLIENT_BYTES = 51 * (4 + 8)


def federation(cache_bytes: int) -> Federation:
    data = identity_data(203)
    cfg = compose_config("partitioner=iid", "num_clients=4")
    return Federation(data, build_partitioner(cfg.partitioner, data, 4, seed=0), 0.1, 0, cache_bytes=cache_bytes)


def test_client_bytes_are_its_tensors():
    assert federation(10**6).client(0).num_bytes == CLIENT_BYTES


def test_cache_keeps_the_most_recent_clients_within_its_budget():
    fed = federation(cache_bytes=2 * CLIENT_BYTES + 100)
    first = fed.client(0)
    fed.client(1)
    assert fed.client(0) is first  # a hit makes client 0 the most recent
    fed.client(2)  # over budget: the least recently used (1) goes
    assert fed.cached_clients == [0, 2]
    fed.client(3)
    assert fed.cached_clients == [2, 3]
    assert fed.client(0) is not first  # evicted, so materialized again ...
    assert fed.client(0).train_x.tolist() == first.train_x.tolist()  # ... with the same rows


def test_a_client_larger_than_the_budget_is_still_served_and_kept_alone():
    fed = federation(cache_bytes=10)
    fed.client(0)
    fed.client(3)
    assert fed.cached_clients == [3]
