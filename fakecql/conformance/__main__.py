# python -m fakecql.conformance --reactor NAME [--behaviour GLOB] [--json]
#
# Strategy: gevent and eventlet must monkey-patch the standard library
# before socket, ssl or threading are imported, but `python -m` has imported
# the fakecql package (and those modules with it) before this file runs. So
# for those two reactors this module re-executes the interpreter (same
# flags, same arguments) with a bootstrap that patches first and only then
# imports the CLI; every other reactor runs here directly.
#
# Rules: the patches are fakecql/_monkey.py's (the matrix's worker uses the
# same); FAKECQL_CONFORMANCE_PATCHED guards against re-executing twice.
import os
import subprocess
import sys

_MARK = "FAKECQL_CONFORMANCE_PATCHED"
_BOOTSTRAP = "{patch}\nimport sys\nfrom fakecql.conformance._cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _reactor_named(argv: list) -> str:
    for i, arg in enumerate(argv):
        if arg == "--reactor" and i + 1 < len(argv):
            return str(argv[i + 1])
        if arg.startswith("--reactor="):
            return arg.split("=", 1)[1]
    return ""


def _reexecute_patched(argv: list) -> None:
    from fakecql._monkey import PATCHES  # this process only re-executes: what it imports does not matter

    patch = PATCHES.get(_reactor_named(argv))
    if patch is None or os.environ.get(_MARK):
        return
    os.environ[_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]  # -W, -X dev...: as run
    os.execv(sys.executable, [sys.executable, *flags, "-c", _BOOTSTRAP.format(patch=patch), *argv])


if __name__ == "__main__":
    _reexecute_patched(sys.argv[1:])
    from fakecql.conformance._cli import main

    sys.exit(main())
