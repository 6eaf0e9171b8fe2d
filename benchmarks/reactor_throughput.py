"""Reactor throughput and client CPU per query, over TLS 1.3 and plain TCP,
against a peer that is not the bottleneck.

For each reactor importable here (the transport reactor, on asyncio's loop
and on uvloop's, libev, the driver's asyncio reactor): N prepared queries
with C in flight, every measurement in a fresh client process, the reactor
order alternating between rounds; medians are shown. The peer is a canned
responder (benchmarks/_canned_peer.py: a fakecql node answers each distinct
request once, the rest are replayed from a cache), whose CPU use during each
run is printed so a reader sees it was not saturated (--peer node drives a
fakecql node process instead). Prints queries/s, client CPU µs per query
(utime+stime of the client process), the peer's CPU use, the cyclic garbage
collector's work per 10,000 queries (gc left on), and the ratios of the
transport reactor to libev: of the medians, and round by round (each round
runs the reactors back to back, so a round's ratio compares like with like
on a machine whose speed drifts). Where two CPUs are usable, the client runs
on one and the peer on another, as on two machines: the peer never runs on
the client's CPU, so the client's CPU figures are its own (--no-pin leaves
the placement to the scheduler). Pinning does not make single runs agree:
on a 2-CPU VM they still spread by a factor of two at one request in flight,
which is why the ratio table says round by round how often each was ahead.
Prints figures; asserts nothing.

    python benchmarks/reactor_throughput.py [--queries 20000] [--concurrency 1,16,128] [--rounds 3]
    python benchmarks/reactor_throughput.py --profile transport --concurrency 1 --transports tls
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import LISTENING, NodeProcess, machine, median, percentile, stop_process, table  # noqa: E402

QUERY = "SELECT release_version FROM system.local WHERE key = ?"
ALL_REACTORS = ["transport", "transport-uvloop", "libev", "asyncio"]
BASELINE = "libev"
WARM_UP = 2000  # queries each client runs before the measured ones (fewer if it measures fewer)
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_canned_peer.py")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def placement(pin: bool) -> Tuple[Optional[int], Optional[int], str]:
    """(the client's CPU, the peer's CPU, a line saying so): two different
    CPUs of those this process may run on, or None and None (and why)."""
    if not pin:
        return None, None, "CPU placement: left to the scheduler (--no-pin)"
    if not hasattr(os, "sched_setaffinity"):
        return None, None, "CPU placement: left to the scheduler (no sched_setaffinity on this system)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, f"CPU placement: left to the scheduler (only CPU {cpus[0]} is usable)"
    return cpus[0], cpus[-1], f"CPU placement: the client on CPU {cpus[0]}, the peer on CPU {cpus[-1]}"


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of process `pid` onto `cpu` (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except ProcessLookupError:  # a thread that has just ended
            pass


class CannedPeer:
    """benchmarks/_canned_peer.py in its own process, stopped on exit."""

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        self.certs = tempfile.TemporaryDirectory(prefix="canned-peer-")
        self.host, self.port = "127.0.0.1", 0

    @property
    def ca_pem(self) -> str:
        return os.path.join(self.certs.name, "ca.pem")

    def __enter__(self) -> "CannedPeer":
        argv = [sys.executable, PEER_SCRIPT] + (["--tls-ca", self.ca_pem] if self.tls else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the peer prints it or dies
        match = LISTENING.match(line)
        if not match:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError(f"the canned peer did not start: {line!r}")
        self.host, self.port = match["h4"] or match["h6"], int(match["port"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.certs.cleanup()


# -- the client, in a process of its own ------------------------------------------------


class GarbageCount:
    """What the cyclic collector did while counting: collections and objects freed."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.collected = 0
        self.counting = False

    def __call__(self, phase: str, info: Dict[str, int]) -> None:
        if self.counting and phase == "stop":
            self.collections[info["generation"]] += 1
            self.collected += info["collected"]


def warm_up(queries: int) -> int:
    """The unmeasured queries a client runs before measuring `queries`."""
    return min(WARM_UP, queries)


def worker(args: argparse.Namespace) -> None:
    """One measurement, in this process: print one JSON line."""
    if args.cpu is not None:  # before the driver starts a thread: they all inherit it
        os.sched_setaffinity(0, {args.cpu})
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy
    from cassandra.query import tuple_factory

    from fakecql.reactors import load_reactor

    context = None
    if args.ca:
        context = ssl.create_default_context(cafile=args.ca)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    # Protocol v4 (what Scylla speaks), no compression and tuple rows: the
    # driver's v5 segment CRCs, lz4 and per-result namedtuple classes are
    # pure Python and the same for every reactor; leaving them out makes
    # the reactors' own cost visible.
    cluster = Cluster(
        [args.host], port=args.port, ssl_context=context, connection_class=load_reactor(args.reactor),
        protocol_version=4, compression=False,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), row_factory=tuple_factory)},
        connect_timeout=10, control_connection_timeout=10,
    )
    garbage = GarbageCount()
    gc.callbacks.append(garbage)
    profiler = None
    thread_profilers: List[Any] = []
    if args.profile:  # every thread the driver starts (the reactor's loop) gets a profiler of its own
        import cProfile

        def profile_thread(*_: Any) -> None:
            thread_profiler = cProfile.Profile()
            thread_profilers.append(thread_profiler)
            thread_profiler.enable()

        threading.setprofile(profile_thread)
    try:
        session = cluster.connect()
        # No client timestamps: every EXECUTE is then the same bytes (bar the
        # stream id), which the canned peer answers from its cache.
        session.use_client_timestamp = False
        statement = session.prepare(QUERY)
        run(session, statement, warm_up(args.queries), args.concurrency)
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            for thread_profiler in thread_profilers:  # from here on: the measured queries
                thread_profiler.clear()
        if args.gc_debug:
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
        peer0 = _cpu_seconds(args.peer_pid) if args.peer_pid else 0.0
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        garbage.counting = True
        if profiler is not None:
            profiler.enable()
        latencies = run(session, statement, args.queries, args.concurrency)
        if profiler is not None:
            profiler.disable()
        garbage.counting = False
        wall = time.perf_counter() - wall0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        peer = (_cpu_seconds(args.peer_pid) - peer0) if args.peer_pid else float("nan")
        if args.gc_debug:
            gc.collect()
            gc.set_debug(0)
    finally:
        cluster.shutdown()
        gc.callbacks.remove(garbage)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    if profiler is not None:
        import pstats

        stats = pstats.Stats(profiler, stream=sys.stderr)
        for thread_profiler in thread_profilers:
            stats.add(thread_profiler)
        print(f"profile of all threads (the reactor's from its start; the caller's over {args.queries} queries)",
              file=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile_lines)
    if args.gc_debug:
        _print_garbage(gc.garbage, args.queries)
    per = 10000 / args.queries
    print(json.dumps({
        "qps": args.queries / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_us": cpu / args.queries * 1e6,
        "sys_us": (usage1.ru_stime - usage0.ru_stime) / args.queries * 1e6,
        "ctx_switches": (usage1.ru_nvcsw + usage1.ru_nivcsw - usage0.ru_nvcsw - usage0.ru_nivcsw) / args.queries,
        "peer_util": peer / wall,
        "gc_runs": sum(garbage.collections) * per,
        "gc_full": garbage.collections[2] * per,
        "gc_collected": garbage.collected * per,
    }))


def _print_garbage(garbage: List[Any], queries: int) -> None:
    """The types of the objects found in cycles, most common first."""
    counts: Dict[str, int] = defaultdict(int)
    for obj in garbage:
        kind = type(obj).__qualname__
        if kind == "function":
            kind = f"function {obj.__qualname__}"
        elif kind == "cell":
            try:
                kind = f"cell -> {type(obj.cell_contents).__qualname__}"
            except ValueError:
                kind = "cell (empty)"
        counts[kind] += 1
    print(f"objects in reference cycles over {queries} queries: {len(garbage)}", file=sys.stderr)
    for kind, count in sorted(counts.items(), key=lambda item: -item[1])[:30]:
        print(f"  {count:8d}  {kind}", file=sys.stderr)
    garbage.clear()


def run(session: Any, statement: Any, total: int, concurrency: int) -> List[float]:
    """`total` executions keeping `concurrency` in flight; the latency of each."""
    latencies: List[float] = []
    lock = threading.Lock()
    done = threading.Event()
    state: Dict[str, Any] = {"issued": 0, "finished": 0, "error": None}

    def issue() -> None:
        with lock:
            if state["issued"] >= total:
                return
            state["issued"] += 1
        started = time.perf_counter()
        future = session.execute_async(statement, ("local",))
        future.add_callbacks(finished, failed, callback_args=(started,), errback_args=(started,))

    def finished(rows: Any, started: float) -> None:
        latencies.append(time.perf_counter() - started)
        complete()

    def failed(exc: BaseException, started: float) -> None:
        state["error"] = exc
        complete()

    def complete() -> None:
        with lock:
            state["finished"] += 1
            last = state["finished"] >= total
        if last:
            done.set()
        else:
            issue()

    for _ in range(min(concurrency, total)):
        issue()
    if not done.wait(600):
        raise RuntimeError(f"only {state['finished']} of {total} queries finished in 600 s")
    if state["error"] is not None:
        raise RuntimeError(f"a query failed: {state['error']!r}")
    return latencies


# -- the driver: peers, rounds, medians --------------------------------------------------


def worker_argv(peer: Any, reactor: str, tls: bool, queries: int, concurrency: int,
                cpu: Optional[int] = None) -> List[str]:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--reactor", reactor,
            "--host", peer.host, "--port", str(peer.port), "--queries", str(queries),
            "--concurrency", str(concurrency), "--peer-pid", str(peer.proc.pid)]
    if tls:
        argv += ["--ca", peer.ca_pem]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    return argv


def measure(peer: Any, reactor: str, tls: bool, queries: int, concurrency: int,
            cpu: Optional[int] = None) -> Dict[str, float]:
    result = subprocess.run(worker_argv(peer, reactor, tls, queries, concurrency, cpu),
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{reactor} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@contextlib.contextmanager
def start_peer(kind: str, tls: bool, cpu: Optional[int] = None) -> Iterator[Any]:
    """The peer, running (on `cpu` if one is given), stopped on exit."""
    peer = NodeProcess(*(["--tls", "--tls-min", "1.3"] if tls else [])) if kind == "node" else CannedPeer(tls)
    with peer:
        if cpu is not None:
            pin_process(peer.proc.pid, cpu)
        yield peer


def known_reactors(names: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """(the reactors usable here, why each other one is not)."""
    from fakecql.reactors import REACTORS, available_reactors

    unknown = {name: "not a reactor name this fakecql knows" for name in names if name not in REACTORS}
    usable, unusable = available_reactors([name for name in names if name in REACTORS])
    unusable.update(unknown)
    return list(usable), unusable


def collect(queries: int = 20000, concurrencies: Sequence[int] = (1, 16, 128), rounds: int = 3,
            reactors: Sequence[str] = ALL_REACTORS, transports: Sequence[str] = ("tls", "plain"),
            peer_kind: str = "canned", verbose: bool = False, pin: bool = True) -> Dict[str, Any]:
    """Run the measurements; the Markdown report, the throughput ratios
    transport/other at TLS 1.3, C = max, and the medians of every
    (transport, C, reactor) cell (for run_all's summary)."""
    usable, unusable = known_reactors(reactors)
    client_cpu, peer_cpu, where = placement(pin)
    lines = [f"# Reactor throughput\n\n{machine()}\n\n{where}\n"]
    for name, reason in unusable.items():
        lines.append(f"not measured: {name}: {reason}")
    samples: Dict[Tuple[str, int, str], List[Dict[str, float]]] = defaultdict(list)
    for transport in transports:
        tls = transport == "tls"
        with start_peer(peer_kind, tls, peer_cpu) as peer:
            for round_number in range(rounds):
                order = usable if round_number % 2 == 0 else usable[::-1]
                for concurrency in concurrencies:
                    for reactor in order:
                        figures = measure(peer, reactor, tls, queries, concurrency, client_cpu)
                        samples[(transport, concurrency, reactor)].append(figures)
                        if verbose:
                            print(f"  {transport} C={concurrency} {reactor}: {figures['qps']:,.0f} q/s, "
                                  f"{figures['cpu_us']:.1f} µs CPU/query, peer {figures['peer_util']:.0%} "
                                  f"of a core, gc {figures['gc_collected']:,.0f} objects/10k",
                                  file=sys.stderr)

    def mid(key: Tuple[str, int, str], field: str) -> float:
        return median([run[field] for run in samples[key]])

    rows = []
    for key in samples:
        transport, concurrency, reactor = key
        rows.append({
            "transport": "TLS 1.3" if transport == "tls" else "plain",
            "C": concurrency,
            "reactor": reactor,
            "queries/s": f"{mid(key, 'qps'):,.0f}",
            "p50 ms": f"{mid(key, 'p50_ms'):.2f}",
            "p99 ms": f"{mid(key, 'p99_ms'):.2f}",
            "client CPU µs/query": f"{mid(key, 'cpu_us'):.1f}",
            "peer CPU (cores)": f"{mid(key, 'peer_util'):.2f}",
        })
    peer_name = "a fakecql node process" if peer_kind == "node" else "the canned responder"
    lines.append(f"N = {queries} per run, {rounds} rounds (median shown); peer: {peer_name}, "
                 f"its CPU use during the run in cores (1.00 = one core busy)\n")
    lines.append(table(rows, ["transport", "C", "reactor", "queries/s", "p50 ms", "p99 ms", "client CPU µs/query",
                              "peer CPU (cores)"]))

    lines.append("\ncyclic garbage collector per 10,000 queries (gc on; median)\n")
    garbage_rows = []
    for key in samples:
        transport, concurrency, reactor = key
        garbage_rows.append({"transport": transport, "C": concurrency, "reactor": reactor,
                             "collections": f"{mid(key, 'gc_runs'):.1f}",
                             "full collections": f"{mid(key, 'gc_full'):.2f}",
                             "objects collected": f"{mid(key, 'gc_collected'):,.0f}"})
    lines.append(table(garbage_rows, ["transport", "C", "reactor", "collections", "full collections",
                                      "objects collected"]))

    ratios: Dict[str, float] = {}
    mine_names = [name for name in usable if name.startswith("transport")]
    if BASELINE in usable and mine_names:
        lines.append(f"\nratios to {BASELINE} (queries/s: > 1 is faster; CPU per query: < 1 is cheaper)\n")
        ratio_rows = []
        for mine in mine_names:
            for transport in transports:
                for concurrency in concurrencies:
                    base, ours = (transport, concurrency, BASELINE), (transport, concurrency, mine)
                    ratio_rows.append({
                        "reactor": mine, "transport": transport, "C": concurrency,
                        "queries/s ratio": f"{mid(ours, 'qps') / mid(base, 'qps'):.2f}x",
                        "CPU/query ratio": f"{mid(ours, 'cpu_us') / mid(base, 'cpu_us'):.2f}x",
                        "rounds ahead, q/s (range)": _round_by_round(samples[ours], samples[base], "qps", higher=True),
                        "rounds cheaper, CPU (range)": _round_by_round(samples[ours], samples[base], "cpu_us",
                                                                       higher=False),
                    })
        lines.append(table(ratio_rows, ["reactor", "transport", "C", "queries/s ratio", "CPU/query ratio",
                                        "rounds ahead, q/s (range)", "rounds cheaper, CPU (range)"]))
    if "transport" in usable and "tls" in transports:
        top = max(concurrencies)
        for other in usable:
            if other != "transport":
                ratios[other] = mid(("tls", top, "transport"), "qps") / mid(("tls", top, other), "qps")
    medians = {key: {field: mid(key, field) for field in ("qps", "cpu_us", "gc_runs", "gc_collected")}
               for key in samples}
    return {"report": "\n".join(lines), "ratios": ratios, "C": max(concurrencies), "medians": medians}


def _round_by_round(ours: List[Dict[str, float]], base: List[Dict[str, float]], field: str, higher: bool) -> str:
    """How many rounds `ours` did better in (a round runs both back to back),
    and the lowest and highest of the rounds' ratios: "4/5 (0.97x-1.12x)"."""
    ratios = [mine[field] / theirs[field] for mine, theirs in zip(ours, base)]
    better = sum(1 for ratio in ratios if (ratio >= 1.0 if higher else ratio <= 1.0))
    return f"{better}/{len(ratios)} ({min(ratios):.2f}x-{max(ratios):.2f}x)"


def profile(reactor: str, tls: bool, queries: int, concurrency: int, peer_kind: str, lines: int,
            pin: bool = True) -> None:
    """One run of `reactor` under cProfile, with the types of the objects
    left in reference cycles (gc.DEBUG_SAVEALL over a second run)."""
    client_cpu, peer_cpu, where = placement(pin)
    print(where)
    with start_peer(peer_kind, tls, peer_cpu) as peer:
        argv = worker_argv(peer, reactor, tls, queries, concurrency, client_cpu)
        for extra in (["--profile", "--profile-lines", str(lines)], ["--gc-debug"]):
            result = subprocess.run(argv + extra, capture_output=True, text=True, timeout=900)
            sys.stdout.write(result.stderr)
            print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "(no figures)")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--concurrency", default="1,16,128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reactors", default=",".join(ALL_REACTORS))
    parser.add_argument("--transports", default="tls,plain")
    parser.add_argument("--peer", choices=("canned", "node"), default="canned")
    parser.add_argument("--profile", metavar="REACTOR", nargs="?", const=True,
                        help="profile one run of REACTOR (first concurrency and transport) instead")
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="leave the client's and the peer's CPUs to the scheduler")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gc-debug", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reactor", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--peer-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.concurrency = int(args.concurrency)
        worker(args)
        return
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    transports = args.transports.split(",")
    if args.profile:
        print(machine())
        profile(args.profile, transports[0] == "tls", args.queries, concurrencies[0], args.peer, args.profile_lines,
                args.pin)
        return
    figures = collect(args.queries, concurrencies, args.rounds, args.reactors.split(","), transports,
                      args.peer, verbose=True, pin=args.pin)
    print(figures["report"])


if __name__ == "__main__":
    main()
