# Scylla's sharding, sans I/O: the shard of a token (hand-computed vectors,
# a second implementation written here from the protocol document's Java
# form, and scylla-driver's own, when it is the installed driver), the
# Murmur3 token of a key (published values and the installed driver's
# murmur3), the shard of a connection, and the SUPPORTED a connection gets.
from __future__ import annotations

import struct
from typing import Callable, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakecql.murmur3 import MAX_TOKEN, MIN_TOKEN
from fakecql.shards import (
    DEFAULT_IGNORE_MSB,
    MURMUR3_PARTITIONER,
    SHARDING_ALGORITHM,
    ShardAssigner,
    Sharding,
    shard_of_port,
    shard_of_token,
)

# (token, nr_shards, ignore_msb, shard), each worked out by hand:
# biased = token + 2**63; shifted = (biased << ignore_msb) mod 2**64; shard = shifted * n // 2**64.
TOKEN_VECTORS = [
    (MIN_TOKEN, 4, 12, 0),  # biased 0
    (MAX_TOKEN, 4, 12, 3),  # biased 2**64-1, shifted 2**64-2**12: just under 4 * 2**64 / 4
    (0, 4, 12, 0),  # biased 2**63, shifted 2**75 mod 2**64 = 0
    (0, 4, 0, 2),  # biased 2**63 = half of the ring: shard 2 of 4
    (-1, 4, 0, 1),  # biased 2**63-1: just under half
    (MIN_TOKEN + 2 ** 50, 4, 12, 1),  # shifted 2**62 = a quarter
    (MIN_TOKEN + 2 ** 51, 4, 12, 2),  # shifted 2**63 = a half
    (MIN_TOKEN + 3 * 2 ** 50, 4, 12, 3),  # shifted 3 * 2**62
    (MIN_TOKEN + 2 ** 52, 4, 12, 0),  # shifted 2**64: the 12 ignored bits wrap it to 0
    (MIN_TOKEN + 2 ** 52 - 1, 4, 12, 3),  # shifted 2**64 - 2**12
    (-3074457345618258602, 3, 0, 1),  # biased 2**64 // 3 + 1: times 3 is 2**64 + 2
    (-3074457345618258603, 3, 0, 0),  # biased 2**64 // 3: times 3 is 2**64 - 1
    (123456789, 1, 12, 0),  # one shard owns everything
    (MAX_TOKEN, 7, 0, 6),
]


@pytest.mark.parametrize("token, nr_shards, ignore_msb, shard", TOKEN_VECTORS)
def test_shard_of_token_hand_vectors(token: int, nr_shards: int, ignore_msb: int, shard: int) -> None:
    assert shard_of_token(token, nr_shards, ignore_msb) == shard
    assert Sharding(nr_shards, ignore_msb).shard_of_token(token) == shard


def _java_form(token: int, nr_shards: int, ignore_msb: int) -> int:
    """The protocol document's Java version (32-bit halves, no 128-bit product), written here."""
    mask64 = (1 << 64) - 1
    t = (token + (1 << 63)) & mask64
    t = (t << ignore_msb) & mask64
    low, high = t & 0xFFFFFFFF, t >> 32
    total = ((low * nr_shards) >> 32) + high * nr_shards
    return (total >> 32) & 0xFFFFFFFF


def _references() -> List[Tuple[str, Callable[[int, int, int], int]]]:
    """Implementations to compare with: the Java form above, and scylla-driver's
    (Python and Cython) when scylla-driver is the installed driver (cassandra-driver
    has no sharding)."""
    found: List[Tuple[str, Callable[[int, int, int], int]]] = [("java-form", _java_form)]
    try:
        from cassandra.shard_info import _ShardingInfo
    except ImportError:
        return found

    def python_driver(token: int, n: int, msb: int) -> int:
        return int(_ShardingInfo(0, n, MURMUR3_PARTITIONER, SHARDING_ALGORITHM, msb, None, None).shard_id_from_token(token))

    found.append(("scylla-driver _ShardingInfo", python_driver))
    try:
        from cassandra.c_shard_info import ShardingInfo
    except ImportError:
        return found

    def cython_driver(token: int, n: int, msb: int) -> int:
        return int(ShardingInfo(0, n, MURMUR3_PARTITIONER, SHARDING_ALGORITHM, msb, None, None).shard_id_from_token(token))

    found.append(("scylla-driver ShardingInfo (Cython)", cython_driver))
    return found


@pytest.mark.parametrize("name, reference", _references(), ids=[name for name, _ in _references()])
def test_shard_of_token_agrees_with_other_implementations(name: str, reference: Callable[[int, int, int], int]) -> None:
    for token, nr_shards, ignore_msb, shard in TOKEN_VECTORS:
        assert reference(token, nr_shards, ignore_msb) == shard, (name, token, nr_shards, ignore_msb)

    @settings(deadline=None, derandomize=True, database=None)  # the same cases every run, no timing
    @given(
        token=st.integers(MIN_TOKEN, MAX_TOKEN),
        nr_shards=st.integers(1, 256),
        ignore_msb=st.sampled_from([0, 1, 8, DEFAULT_IGNORE_MSB, 20]),
    )
    def agree(token: int, nr_shards: int, ignore_msb: int) -> None:
        ours = shard_of_token(token, nr_shards, ignore_msb)
        assert 0 <= ours < nr_shards
        assert ours == reference(token, nr_shards, ignore_msb)

    agree()


def test_the_driver_reference_is_there_when_scylla_driver_is() -> None:
    """The comparison above includes scylla-driver's code wherever scylla-driver is installed."""
    import cassandra.pool

    is_scylla_driver = hasattr(cassandra.pool.HostConnection, "_open_connection_to_missing_shard")
    names = [name for name, _ in _references()]
    assert ("scylla-driver _ShardingInfo" in names) == is_scylla_driver


def test_shard_of_key_is_the_shard_of_its_token() -> None:
    sharding = Sharding(4)
    key = struct.pack(">i", 1)
    assert sharding.shard_of_key(key) == shard_of_token(-4069959284402364209, 4, 12)


def test_shard_of_port() -> None:
    assert [shard_of_port(p, 4) for p in (50000, 50001, 50002, 50003, 50004)] == [0, 1, 2, 3, 0]
    assert shard_of_port(61235, 1) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"nr_shards": 0}, "nr_shards must be an integer of 1 or more .*got 0"),
    ({"nr_shards": -2}, "nr_shards must be an integer of 1 or more .*got -2"),
    ({"nr_shards": "4"}, "nr_shards must be an integer of 1 or more .*got '4'"),
    ({"nr_shards": True}, "nr_shards must be an integer of 1 or more .*got True"),
    ({"nr_shards": 4, "ignore_msb": 64}, r"ignore_msb must be an integer in \[0, 63\], got 64"),
    ({"nr_shards": 4, "ignore_msb": -1}, r"ignore_msb must be an integer in \[0, 63\], got -1"),
])
def test_bad_sharding_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sharding(**kwargs)


@pytest.mark.parametrize("token", [MIN_TOKEN - 1, MAX_TOKEN + 1, 1.5, True])
def test_token_out_of_range_is_refused(token: object) -> None:
    with pytest.raises(ValueError, match="token must be a signed 64-bit integer"):
        shard_of_token(token, 4)  # type: ignore[arg-type]


def test_ordinary_port_round_robin_shard_aware_port_by_source_port() -> None:
    assigner = ShardAssigner(Sharding(3))
    ordinary = [assigner.assign(50000, shard_aware=False) for _ in range(7)]
    assert ordinary == [0, 1, 2, 0, 1, 2, 0]
    assert [assigner.assign(p, shard_aware=True) for p in (60000, 60001, 60002, 60003)] == [0, 1, 2, 0]
    assert assigner.assign(50000, shard_aware=False) == 1  # the turn is not moved by shard-aware connections


@pytest.mark.parametrize("tls, port_key, other_key", [
    (False, "SCYLLA_SHARD_AWARE_PORT", "SCYLLA_SHARD_AWARE_PORT_SSL"),
    (True, "SCYLLA_SHARD_AWARE_PORT_SSL", "SCYLLA_SHARD_AWARE_PORT"),
])
def test_supported_names_the_shard_and_the_port_of_the_nodes_kind(tls: bool, port_key: str, other_key: str) -> None:
    options = Sharding(4).supported(2, shard_aware_port=19042, tls=tls)
    assert options == {
        "SCYLLA_SHARD": ["2"],
        "SCYLLA_NR_SHARDS": ["4"],
        "SCYLLA_PARTITIONER": ["org.apache.cassandra.dht.Murmur3Partitioner"],
        "SCYLLA_SHARDING_ALGORITHM": ["biased-token-round-robin"],
        "SCYLLA_SHARDING_IGNORE_MSB": ["12"],
        port_key: ["19042"],
    }
    assert other_key not in options
    with pytest.raises(ValueError, match=r"shard must be in \[0, 4\), got 4"):
        Sharding(4).supported(4, shard_aware_port=19042, tls=tls)


def test_scylla_driver_reads_our_supported_as_scylla_does() -> None:
    """What scylla-driver makes of the keys (cassandra-driver has no parser for them:
    with it, this checks that they are plain strings it can carry)."""
    options = Sharding(4).supported(3, shard_aware_port=19142, tls=True)
    try:
        from cassandra.protocol_features import ProtocolFeatures
    except ImportError:
        assert all(isinstance(v, str) for values in options.values() for v in values)
        return
    features = ProtocolFeatures.parse_from_supported(options)
    assert features.shard_id == 3
    info = features.sharding_info
    assert (info.shards_count, info.sharding_ignore_msb, info.shard_aware_port_ssl) == (4, 12, 19142)
    assert not info.shard_aware_port
