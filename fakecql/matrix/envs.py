# Driver environments: one cached virtual environment per driver spec, with
# the packages its reactors need, where matrix workers run.
#
# Strategy: scylla-driver and cassandra-driver both install the `cassandra`
# package, so each spec gets a venv of its own, built with the interpreter
# running the matrix: the driver, pyasyncore on Python 3.12+ (asyncore left
# the standard library), fakecql's own runtime needs (trustme, lz4; uvloop
# for transport-uvloop), and, when the driver ships those reactors, gevent,
# eventlet and twisted with pyOpenSSL and service_identity (their TLS needs
# them). fakecql itself is not installed there: workers import it from a
# folder of links to this very package (and cqltransport), so the code under
# test and the code testing it are always the same. A venv is reused when
# its recipe (the packages asked for, Python's version) is unchanged;
# env.json, written last, marks it complete.
#
# Rules: a bad spec is a ValueError naming it and what is accepted; a failed
# build is an EnvironmentBuildError carrying pip's last lines; nothing is
# half-built and reused.
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from .records import DriverInfo

__all__ = ["DRIVERS", "DriverSpec", "DriverEnv", "EnvironmentBuildError", "parse_driver_spec", "ensure_env",
           "default_cache_dir", "source_links"]

DRIVERS = ("scylla-driver", "cassandra-driver")
# Reactor modules of cassandra/io/ that need packages of their own.
REACTOR_PACKAGES = {
    "geventreactor": ["gevent"],
    # futurist: scylla-driver's Cluster needs its GreenThreadPoolExecutor under eventlet
    "eventletreactor": ["eventlet", "pyOpenSSL", "futurist"],
    "twistedreactor": ["twisted[tls]", "pyOpenSSL", "service_identity"],
}
RUNTIME = ["trustme>=1.1", "lz4>=4", "cryptography", "uvloop>=0.17"]  # uvloop: --reactor transport-uvloop
RECIPE_VERSION = 1  # bump to rebuild every cached environment

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*(?:==\s*(?P<version>[0-9][0-9A-Za-z.+-]*))?\s*$")


class EnvironmentBuildError(RuntimeError):
    """A driver environment could not be built; the message says which and pip's last words."""


@dataclass(frozen=True)
class DriverSpec:
    name: str  # "cassandra-driver"
    version: Optional[str]  # "3.30.1", or None for the newest release for this Python

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name

    @property
    def installed(self) -> bool:
        return self.name == INSTALLED

    def __str__(self) -> str:
        return self.requirement


INSTALLED = "installed"  # the driver installed beside fakecql, in the running interpreter


def parse_driver_spec(text: str) -> DriverSpec:
    """'cassandra-driver==3.30.1', 'scylla-driver' (the newest release), or
    'installed' (the driver this interpreter has: a driver's own checkout, say)."""
    if text.strip() == INSTALLED:
        return DriverSpec(INSTALLED, None)
    match = _SPEC.match(text)
    if not match:
        raise ValueError(f"driver spec {text!r} is not NAME or NAME==VERSION (e.g. cassandra-driver==3.30.1)")
    name = match.group("name").lower().replace("_", "-")
    if name not in DRIVERS:
        raise ValueError(f"driver spec {text!r}: the driver must be one of {', '.join(DRIVERS)}")
    return DriverSpec(name, match.group("version"))


@dataclass(frozen=True)
class DriverEnv:
    spec: DriverSpec
    path: Path
    info: DriverInfo
    python_path: Optional[Path] = None  # default: the venv's bin/python

    @property
    def python(self) -> Path:
        return self.python_path or self.path / "bin" / "python"


def default_cache_dir() -> Path:
    if os.environ.get("FAKECQL_CACHE"):
        return Path(os.environ["FAKECQL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fakecql" / "matrix"


def source_links(cache_dir: Path) -> Path:
    """A folder holding links to this fakecql and cqltransport (workers put it on sys.path)."""
    import importlib.util

    packages = []
    for name in ("fakecql", "cqltransport"):  # found, not imported: cqltransport needs a driver
        found = importlib.util.find_spec(name)
        if found is None or found.origin is None:
            raise EnvironmentBuildError(f"cannot find the {name} package beside this fakecql")
        packages.append(Path(found.origin).resolve().parent)
    key = hashlib.sha256("\n".join(str(p) for p in packages).encode()).hexdigest()[:12]
    folder = cache_dir / f"src-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    for package in packages:
        link = folder / package.name
        if not link.exists():
            try:
                link.symlink_to(package, target_is_directory=True)
            except FileExistsError:
                pass
    return folder


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _recipe(spec: DriverSpec) -> str:
    packages = [spec.requirement, *RUNTIME]
    if sys.version_info >= (3, 12):
        packages.append("pyasyncore")
    # Not the interpreter's path: a venv made from a venv runs the base
    # interpreter, so the same Python version makes the same environment.
    data = {"recipe": RECIPE_VERSION, "python": sys.version.split()[0],
            "packages": packages, "reactor_packages": REACTOR_PACKAGES}
    return json.dumps(data, sort_keys=True)


def _pip(python: Path, args: List[str], what: str) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise EnvironmentBuildError(f"{what}: pip install {' '.join(args)} failed (status {done.returncode}):\n{tail}")


_PROBE = """
import importlib.metadata as m, json, os, cassandra
io = os.path.join(os.path.dirname(cassandra.__file__), "io")
mods = sorted(f[:-3] for f in os.listdir(io) if f.endswith("reactor.py"))
for dist in ("scylla-driver", "cassandra-driver"):
    try:
        version = m.version(dist); break
    except m.PackageNotFoundError:
        continue
print(json.dumps({"name": dist, "version": version, "modules": mods}))
"""


def _probe(python: Path) -> Tuple[str, str, List[str]]:
    done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise EnvironmentBuildError(f"the driver does not import in {python}: {done.stderr.strip()[-500:]}")
    data = json.loads(done.stdout)
    return data["name"], data["version"], data["modules"]


def _reactor_name(module: str) -> str:
    return module[: -len("reactor")]


def ensure_env(
    spec: DriverSpec, cache_dir: Optional[Path] = None, *, note: Callable[[str], None] = lambda text: None,
    rebuild: bool = False,
) -> DriverEnv:
    """The environment for `spec`, built now if it is missing, incomplete or of another recipe.
    Two matrix runs at once wait for each other's build (a lock file per environment)."""
    if spec.installed:
        return installed_env()
    cache = cache_dir or default_cache_dir()
    folder = cache / f"py{_python_tag()}-{spec.name}-{spec.version or 'newest'}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _ensure_env(spec, folder, note, rebuild)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_env(spec: DriverSpec, folder: Path, note: Callable[[str], None], rebuild: bool) -> DriverEnv:
    marker = folder / "env.json"
    recipe = _recipe(spec)
    if not rebuild and marker.exists():
        try:
            saved = json.loads(marker.read_text())
            if saved.get("recipe") == recipe and (folder / "bin" / "python").exists():
                return DriverEnv(spec, folder, _info(spec, saved))
        except (OSError, ValueError, KeyError):
            pass
    started = time.monotonic()
    note(f"building the {spec} environment (Python {_python_tag()}) in {folder} ...")
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "venv", str(folder)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise EnvironmentBuildError(f"{spec}: python -m venv {folder} failed: {done.stderr.strip()[-500:]}")
    python = folder / "bin" / "python"
    packages = json.loads(recipe)["packages"]
    _pip(python, packages, str(spec))
    name, version, modules = _probe(python)
    extra: List[str] = []
    for module in modules:
        extra.extend(p for p in REACTOR_PACKAGES.get(module, []) if p not in extra)
    if extra:
        note(f"  {spec}: adding what its reactors need: {', '.join(extra)}")
        _pip(python, extra, f"{spec} reactors")
    saved = {"recipe": recipe, "name": name, "version": version,
             "reactors": [_reactor_name(m) for m in modules], "python": sys.version.split()[0]}
    marker.write_text(json.dumps(saved, indent=2))
    note(f"  {spec}: {name} {version} ready in {time.monotonic() - started:.0f} s "
         f"(reactors: {', '.join(saved['reactors'])})")
    return DriverEnv(spec, folder, _info(spec, saved))


def installed_env() -> DriverEnv:
    """The running interpreter as a driver environment (nothing is built)."""
    python = Path(sys.executable)
    try:
        name, version, modules = _probe(python)
    except EnvironmentBuildError as exc:
        raise EnvironmentBuildError(f"--driver installed: {exc}") from None
    saved = {"name": name, "version": version, "reactors": [_reactor_name(m) for m in modules],
             "python": sys.version.split()[0]}
    spec = DriverSpec(INSTALLED, None)
    return DriverEnv(spec, Path(sys.prefix), _info(spec, saved), python_path=python)


def _info(spec: DriverSpec, saved: dict) -> DriverInfo:
    return DriverInfo(spec=str(spec), name=saved["name"], version=saved["version"], python=saved["python"],
                      reactors=tuple(saved["reactors"]) + ("transport",))
