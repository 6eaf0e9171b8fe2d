# Synthetic matrix runs for the report tests (and for looking at a report
# by eye: realistic_run() is what a full run over three drivers looks like).
#
# Rules: plain data, no randomness that is not seeded, no I/O.
from __future__ import annotations

import random
from typing import List, Tuple

from fakecql.matrix.records import Cell, DriverInfo, MatrixRun

CASSANDRA = "cassandra-driver 3.30.1"
SCYLLA = "scylla-driver 3.29.11"

# Text that breaks every format that forgets to escape: markup, entities,
# both quotes, backticks, pipes, newlines, a terminal escape, non-ASCII.
NASTY = ('SSL error <alert> & "bad" \'record\' | `tick` *star* [x](y) </td><script>alert(1)</script>\n'
         "Traceback (most recent call last):\n"
         "  File \"x.py\", line 1, in <module>\n"
         "    deeper &amp; deeper \u2013 caf\u00e9")
ESCAPE = "reactor printed \x1b[31mred\x1b[0m and \x00 a NUL"
SHARED_WHY = 'transport reactor needs Python >= 3.10 & an <asyncio> "loop"'


def nasty_run() -> MatrixRun:
    """Two drivers, four columns, all four outcomes, expected and deviating
    cells, one slow cell, and causes full of markup."""
    def c(driver: str, reactor: str, scenario: str, outcome: str, expected: str, seconds: float = 1.0,
          **kw: object) -> Cell:
        return Cell(driver=driver, reactor=reactor, scenario=scenario, outcome=outcome, expected=expected,
                    seconds=seconds, budget=10.0, **kw)  # type: ignore[arg-type]

    cells = [
        c(CASSANDRA, "asyncio", "test_connect", "pass", "pass", 0.31),
        c(CASSANDRA, "libev", "test_connect", "fail", "pass", 2.04, cause=NASTY),
        c(CASSANDRA, "asyncio", "test_key_update", "xfail", "xfail", 2.01, bug="key-update-asyncio",
          cause="read 0 bytes after the KeyUpdate"),
        c(CASSANDRA, "libev", "test_key_update", "pass", "xfail", 0.5, bug="key-update-libev"),
        c(CASSANDRA, "asyncio", "test_rate_baseline", "pass", "pass", 3.0, rate=1000.0),
        c(CASSANDRA, "libev", "test_rate_baseline", "pass", "pass", 3.0, rate=1000.0),
        c(CASSANDRA, "asyncio", "test_rate_dribbled", "pass", "pass", 3.0, rate=50.0, baseline="test_rate_baseline"),
        c(CASSANDRA, "libev", "test_rate_dribbled", "pass", "pass", 3.0, rate=500.0, baseline="test_rate_baseline"),
        c(SCYLLA, "asyncio", "test_connect", "unavailable", "pass", 0.0, cause="cannot import cassandra.io.asyncioreactor"),
        c(SCYLLA, "transport", "test_connect", "unavailable", "unavailable", 0.0, cause=SHARED_WHY),
        c(SCYLLA, "asyncio", "test_dribble", "fail", "xfail", 4.5, bug="v5-split-header", cause=ESCAPE),
        c(SCYLLA, "transport", "test_dribble", "unavailable", "unavailable", 0.0, cause=SHARED_WHY),
        c(SCYLLA, "asyncio", "test_key_update", "xfail", "xfail", 2.2, bug="key-update-asyncio"),
        c(SCYLLA, "transport", "test_key_update", "unavailable", "unavailable", 0.0, cause=SHARED_WHY),
    ]
    drivers = [
        DriverInfo(spec="cassandra-driver==3.30.1", name="cassandra-driver", version="3.30.1", python="3.11.7",
                   reactors=("asyncio", "libev")),
        DriverInfo(spec="scylla-driver==3.29.11", name="scylla-driver", version="3.29.11", python="3.11.7",
                   reactors=("asyncio", "transport")),
    ]
    return MatrixRun(generated="2026-11-20T09:30:00Z", python="3.11.7", drivers=drivers, cells=cells,
                     wall_seconds=41.5, machine="Linux x86_64, 8 CPUs")


SCENARIOS: List[Tuple[str, float]] = [
    ("test_can_connect_with_ssl_ca", 10), ("test_can_connect_with_ssl_client_auth", 10),
    ("test_wrong_hostname_is_refused", 10), ("test_wrong_ca_is_refused", 10),
    ("test_key_update_mid_stream", 20), ("test_dribbled_records_one_byte", 30),
    ("test_dribbled_v5_split_header", 30), ("test_stalled_handshake_times_out", 15),
    ("test_stop_reading_backpressure", 30), ("test_reset_during_query", 15),
    ("test_close_during_startup", 15), ("test_large_result_64mb", 60),
    ("test_query_rate_baseline", 30), ("test_query_rate_dribbled", 30),
    ("test_query_rate_key_update", 30), ("test_many_concurrent_streams", 30),
    ("test_lz4_compression", 10), ("test_password_auth", 10),
    ("test_idle_heartbeat", 40), ("test_clean_shutdown", 10),
]


def realistic_run(seed: int = 7) -> MatrixRun:
    """20 scenarios x 11 columns over three drivers, with the mix a real run has."""
    rng = random.Random(seed)
    drivers = [
        DriverInfo("cassandra-driver==3.30.1", "cassandra-driver", "3.30.1", "3.11.7",
                   ("asyncio", "asyncore", "libev", "twisted")),
        DriverInfo("scylla-driver==3.29.11", "scylla-driver", "3.29.11", "3.11.7",
                   ("asyncio", "asyncore", "libev", "transport")),
        DriverInfo("scylla-driver==3.26.9", "scylla-driver", "3.26.9", "3.9.18", ("asyncio", "libev", "transport")),
    ]
    cells: List[Cell] = []
    for d in drivers:
        for scenario, budget in SCENARIOS:
            for reactor in d.reactors:
                seconds = round(rng.uniform(0.2, budget / 4), 2)
                kw: dict = {}
                outcome = expected = "pass"
                if reactor == "transport" and d.version == "3.26.9":
                    outcome = expected = "unavailable"
                    kw["cause"] = "the transport reactor needs scylla-driver >= 3.28 (Connection.push signature)"
                    seconds = 0.0
                elif reactor == "asyncore" and "3.29" in d.version:
                    outcome = expected = "unavailable"
                    kw["cause"] = "asyncore is gone from Python 3.12 and pyasyncore is not installed"
                    seconds = 0.0
                elif scenario == "test_key_update_mid_stream" and reactor in ("asyncio", "asyncore"):
                    outcome = expected = "xfail"
                    kw["bug"] = f"{reactor}-ignores-ssl-want-read"
                    kw["cause"] = "SSLWantReadError after KeyUpdate was treated as EOF; 3 frames unread"
                elif scenario == "test_dribbled_v5_split_header" and reactor != "transport":
                    outcome = expected = "xfail"
                    kw["bug"] = "v5-segment-header-split"
                    kw["cause"] = "the driver read a 3-byte segment header as complete"
                if scenario.startswith("test_query_rate"):
                    kw["rate"] = rng.uniform(800, 1500) if scenario.endswith("baseline") else rng.uniform(150, 600)
                    if scenario != "test_query_rate_baseline":
                        kw["baseline"] = "test_query_rate_baseline"
                cells.append(Cell(driver=d.label, reactor=reactor, scenario=scenario, outcome=outcome,
                                  expected=expected, seconds=seconds, budget=float(budget), **kw))
    # The surprises a run turns up.
    def replace(driver: str, reactor: str, scenario: str, **changes: object) -> None:
        for i, cell in enumerate(cells):
            if (cell.driver, cell.reactor, cell.scenario) == (driver, reactor, scenario):
                data = cell.to_json()
                data.update(changes)
                cells[i] = Cell.from_json(data)
                return
        raise KeyError((driver, reactor, scenario))

    replace("cassandra-driver 3.30.1", "libev", "test_stop_reading_backpressure", outcome="fail", seconds=30.02,
            cause="budget of 30s exceeded: the reactor stopped reading after 4 MiB while 212 requests were "
                  "in flight; the node saw 0 bytes read for 27.9s\nunread by the reactor: "
                  "ssl.SSLWantWriteError('The operation did not complete (write) (_ssl.c:2406)')\n"
                  "at cassandra/io/libevreactor.py:352 in handle_write")
    replace("scylla-driver 3.29.11", "libev", "test_key_update_mid_stream", outcome="fail", seconds=20.0,
            cause="ConnectionShutdown: Connection to 127.0.0.1:9142 was closed <after KeyUpdate> & never reopened")
    replace("cassandra-driver 3.30.1", "asyncio", "test_dribbled_v5_split_header", outcome="pass", seconds=1.21,
            cause="")
    replace("scylla-driver 3.26.9", "asyncio", "test_query_rate_dribbled", rate=31.0)
    replace("scylla-driver 3.26.9", "libev", "test_idle_heartbeat", outcome="unavailable", seconds=0.0,
            cause="libev headers missing: the driver was built without the libev extension")
    return MatrixRun(generated="2026-11-20T09:30:00+00:00", python="3.11.7", drivers=drivers, cells=cells,
                     wall_seconds=612.4, machine="Linux 6.8 x86_64, 16 CPUs, Debian 12")
