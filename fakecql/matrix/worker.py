# The client side of matrix cells, in the driver's environment: a fork
# server per (driver, reactor), one forked child per cell.
#
# Strategy: the runner starts `python path/to/worker.py '<json>'` with the
# interpreter of a driver environment. This file runs by path, not as part
# of the fakecql package, so nothing is imported before the reactors that
# need it monkey-patch the standard library (gevent, eventlet: their
# documented set-up). The server then imports the driver, the reactor and
# fakecql's client once (a second or more per process, which every cell
# would otherwise pay) and, for each job line on stdin, forks a child that
# runs one cell in a fresh process state: no reactor has run in the parent,
# so the child starts its reactor from nothing. The child reports on stdout
# in lines that start with MARK:
#   {"event": "started", "pid": N}     the runner may kill it at its deadline
#   {"event": "connected"}             the query phase may start; the child
#                                      waits for one line on stdin (the
#                                      runner has swapped the node's faults)
#   {"event": "result", ...}           before the Cluster shuts down
#   {"event": "done"}                  after
# and the server says {"event": "ready"} when it can take the next job
# (also once at start, or {"event": "result", "unavailable": ...} and exits
# when the reactor cannot be loaded at all).
#
# Rules: nothing raises out of a child; a child ends with os._exit so no
# leftover thread of a reactor keeps it; the server never runs a reactor.
import json
import os
import sys

MARK = "@@fakecql-matrix "


def emit(event: str, **data: object) -> None:
    out = sys.__stdout__  # the runner's pipe, whatever a reactor did to sys.stdout
    assert out is not None
    out.write(MARK + json.dumps({"event": event, **data}) + "\n")
    out.flush()


def monkey_patch(reactor: str) -> None:
    """fakecql/_monkey.py's patch, executed from its file: importing it would
    import the fakecql package, and socket and ssl with it, before patching."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_monkey.py")
    namespace: dict = {}
    with open(path) as source:
        exec(compile(source.read(), path, "exec"), namespace)
    namespace["monkey_patch"](reactor)


def run_cell(job: dict, connection_class: type) -> None:
    """In the forked child: one scenario, reported as events."""
    from fakecql.matrix.causes import UnreadExceptions
    from fakecql.matrix.client import CertFiles, ClientResult, run_client
    from fakecql.matrix.scenarios import scenario

    emit("started", pid=os.getpid())
    unread = UnreadExceptions().start()
    if job["reactor"] == "twisted":
        unread.watch_twisted()
    reported = []

    def connected() -> None:
        if job.get("wait_for_go"):
            emit("connected")
            sys.stdin.readline()  # the runner has changed the node's faults

    def report(result: ClientResult) -> None:
        data = result.to_json()
        data["unread"] = unread.report(seen=result.error_chain + [e for a in result.aimed for e in a["chain"]])
        emit("result", **data)
        reported.append(True)

    result = run_client(scenario(job["scenario"]), connection_class, job["host"], job["port"],
                        CertFiles.in_directory(job["certs_dir"]), on_connected=connected, before_shutdown=report)
    if not reported:  # the reactor could not even start this scenario
        report(result)
    emit("done")


def serve(setup: dict) -> None:
    reactor = setup["reactor"]
    try:
        monkey_patch(reactor)
    except Exception as exc:
        emit("result", unavailable=f"{reactor} cannot monkey-patch here: {type(exc).__name__}: {exc}")
        return
    sys.path.insert(0, setup["src"])
    import cassandra.cluster  # noqa: F401  (imported once, here, for every child)

    import fakecql.matrix.client  # noqa: F401
    from fakecql.reactors import load_reactor

    try:
        connection_class = load_reactor(reactor)
    except ImportError as exc:
        emit("result", unavailable=str(exc))
        return
    emit("ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                run_cell(job, connection_class)
            except BaseException as exc:  # reported, never a silent death
                import traceback

                emit("crash", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(0)
        os.waitpid(pid, 0)
        emit("ready")


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # this file's folder is not a place to import from
    try:
        serve(json.loads(sys.argv[1]))
    except BaseException as exc:
        import traceback

        emit("crash", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        sys.stdout.flush()
        os._exit(0)
