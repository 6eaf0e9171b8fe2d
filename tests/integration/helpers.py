# Reading the driver's errors: NoHostAvailable wraps one error per host,
# and reactors wrap the same TLS failure differently.
from __future__ import annotations

import inspect
import ssl
import sys
from pathlib import Path

from fakecql.matrix.client import error_chain  # the matrix reads the drivers' errors the same way


def is_certificate_error(exc: BaseException) -> bool:
    """True if a certificate verification failure is somewhere in `exc`'s chain.

    Reactors report it differently (SSLCertVerificationError on some, an
    OSError/PermissionError wrapping its text on libev), so both are looked for.
    """
    for error in error_chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return True
    return False


def stock_asyncio_has_tls_transport() -> bool:
    """Whether the driver's own asyncio reactor carries the upstream fix of the
    seed (scylla-driver >= 3.29.11): its TLS runs through create_connection."""
    from cassandra.io.asyncioreactor import AsyncioConnection

    return hasattr(AsyncioConnection, "_setup_ssl_and_run")


STOCK_ASYNCIO_TLS_BUG = (
    "third-party bug: the driver's asyncio reactor hands an ssl.SSLSocket to "
    "loop.sock_sendall/sock_recv and times out (scylladb/python-driver#821; unfixed in "
    "cassandra-driver 3.30.1 and scylla-driver <= 3.29.10): docs/upstream-bugs.md"
)


def stock_asyncio_needs_callers_loop() -> bool:
    """Whether the driver's asyncio reactor only works in a thread whose current
    event loop is its own (Python 3.9 with cassandra-driver): it builds its
    asyncio.Queue with no loop argument, which 3.9 binds to the calling thread's
    loop, so connections the driver opens from its executor threads fail."""
    from cassandra.io.asyncioreactor import AsyncioConnection

    return sys.version_info < (3, 10) and "asyncio.Queue()" in inspect.getsource(AsyncioConnection.__init__)


STOCK_ASYNCIO_PY39_BUG = (
    "third-party bug on Python 3.9: the driver's asyncio reactor builds asyncio.Queue() in the "
    "connecting thread, so connections opened from the driver's executor threads fail with "
    "'There is no current event loop' (cassandra-driver since PYTHON-1313 dropped loop=; "
    "scylla-driver keeps it for < 3.10): docs/upstream-bugs.md"
)


def pytester_ini() -> str:
    """An ini for pytester runs of documented examples: warnings are errors, except
    the third-party ones the project's own pytest.ini ignores (eventlet's import-time
    deprecation, which `import cassandra.cluster` triggers wherever eventlet is installed)."""
    import configparser
    from pathlib import Path

    config = configparser.ConfigParser(interpolation=None)
    config.read(Path(__file__).resolve().parents[2] / "pytest.ini")
    filters = [f.strip() for f in config["pytest"]["filterwarnings"].splitlines() if f.strip()]
    assert filters[0] == "error", filters
    return "[pytest]\nfilterwarnings =\n" + "".join(f"    {f}\n" for f in filters) + \
        "asyncio_default_fixture_loop_scope = function\n"


def run_documented_example(pytester, document: Path) -> None:  # type: ignore[no-untyped-def]
    """Run the first ```python block of `document` that defines a test, as another project's suite would."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", document.read_text(), re.S)
    example = next(b for b in blocks if "def test_" in b)
    pytester.makeini(pytester_ini())
    pytester.makepyfile(test_example=example)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def is_scylla_driver() -> bool:
    """Whether the installed `cassandra` is scylla-driver (its pools open a connection per shard)."""
    from cassandra.pool import HostConnection

    return hasattr(HostConnection, "_open_connection_to_missing_shard")


def uses_ssl_port_with_ssl_context() -> bool:
    """Whether the installed scylla-driver, given only an ssl_context, connects to
    SCYLLA_SHARD_AWARE_PORT_SSL: 3.29.12 does; 3.29.10 takes SSL to mean ssl_options
    and reads SCYLLA_SHARD_AWARE_PORT, which a TLS node does not advertise, so it fills
    its pool through the ordinary port. Asked of the driver's own code, with no node."""
    from types import SimpleNamespace

    from cassandra.connection import DefaultEndPoint
    from cassandra.pool import HostConnection
    from cassandra.shard_info import _ShardingInfo

    info = _ShardingInfo("0", "4", "org.apache.cassandra.dht.Murmur3Partitioner", "biased-token-round-robin",
                         "12", None, "19142")
    cluster = SimpleNamespace(ssl_context=object(), ssl_options=None,
                              shard_aware_options=SimpleNamespace(disable=False, disable_shardaware_port=False))
    pool = SimpleNamespace(host=SimpleNamespace(endpoint=DefaultEndPoint("127.0.0.1", 9042), sharding_info=info),
                           _session=SimpleNamespace(cluster=cluster), advanced_shardaware_block_until=0)
    endpoint = HostConnection._get_shard_aware_endpoint(pool)
    return endpoint is not None and endpoint.port == 19142
