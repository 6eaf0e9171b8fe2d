# What the reactors that need it do before anything else is imported: gevent
# and eventlet monkey-patch the standard library (their documented set-up).
#
# Rules: this file imports nothing at its top, so a process can run it first,
# before socket, ssl or threading exist: the matrix's worker.py executes it by
# path, and `python -m fakecql.conformance` re-executes the interpreter with
# it. One table for both.
PATCHES = {
    "gevent": "from gevent import monkey; monkey.patch_all()",
    "eventlet": "import eventlet; eventlet.monkey_patch()",
}


def monkey_patch(reactor: str) -> None:
    """Patch the standard library as `reactor` needs (nothing for the others)."""
    if reactor in PATCHES:
        exec(PATCHES[reactor], {})
