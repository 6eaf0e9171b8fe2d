"""`python -m fakecql serve` with the node's loop thread under cProfile.

    python benchmarks/_profiled_serve.py OUT.prof serve [serve flags]

The node runs its event loop in a thread of its own, which a plain
`python -m cProfile` would not see; this profiles that thread and writes
the stats to OUT.prof when the node stops (SIGINT/SIGTERM). Used by
`node_capacity.py --profile`.
"""
from __future__ import annotations

import cProfile
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fakecql.cli import main  # noqa: E402

_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    if not self.name.startswith("fakecql-"):  # the node's loop thread is named after its host
        _run(self)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(_run, self)
    finally:
        profiler.dump_stats(sys.argv[1])


if __name__ == "__main__":
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    sys.exit(main(sys.argv[2:]))
