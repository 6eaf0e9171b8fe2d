# `serve --fault NAME[:key=value,...]` and `--fault list`: the registry
# parses every argument type by its annotation (a fault added to VERBS is
# parsed with no change to the registry: a test-only fault proves it), every
# bad name, argument or value is one error naming it, and a node started
# with a fault by a separate process really applies it, as the client's own
# OpenSSL sees it (a KeyUpdate; an expired certificate).
#
# Rules: every wait is bounded (ServeProcess reads the output with a
# deadline and kills the process on exit); clients connect only to loopback.
from __future__ import annotations

import enum
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Tuple

import pytest

import fakecql.cli as cli
from fakecql import CQLServer
import fakecql.faults as faults
from fakecql.faults import CloseConnection, DribbleOutput, Fault, FaultPlan, KeyUpdate, ResetConnection, StallHandshake
from fakecql.faults import StopReading
from fakecql.faults.registry import (
    FaultSpecError,
    arguments,
    describe,
    fault_names,
    fault_spec,
    parse_fault,
    what_it_models,
)
from fakecql.protocol.messages import Query, Ready, RowsResult

from ..rawcql import RawClient
from ..serve_process import ServeProcess
from ..tls_wire import key_updates, record_handshake_messages
from .test_cli import assert_one_error_line, run_cli, serve_in_process

# --------------------------------------------------------------------------
# Parsing: every argument type, by annotation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("key-update", KeyUpdate()),
    ("key_update", KeyUpdate()),  # the verb itself is accepted too
    ("key-update:", KeyUpdate()),
    ("key-update:on-request=0,every=4", KeyUpdate(on_request=0, every=4)),  # int
    ("key-update:on_request=2", KeyUpdate(on_request=2)),  # snake case keys too
    ("key-update:ON-REQUEST=2", KeyUpdate(on_request=2)),
    ("key-update:request-peer=false", KeyUpdate(request_peer=False)),  # bool, every spelling
    ("key-update:request-peer=no", KeyUpdate(request_peer=False)),
    ("key-update:request-peer=0", KeyUpdate(request_peer=False)),
    ("key-update:request-peer=True", KeyUpdate(request_peer=True)),
    ("key-update:request-peer=YES", KeyUpdate(request_peer=True)),
    ("key-update:request-peer=1", KeyUpdate(request_peer=True)),
    ("dribble:max-delay=0.25,max-piece=3,seed=-7", DribbleOutput(max_delay=0.25, max_piece=3, seed=-7)),  # float
    ("dribble:max-delay=1", DribbleOutput(max_delay=1.0)),  # an integer where a number may be
    ("stop-reading:resume-after=0.5", StopReading(resume_after=0.5)),  # Optional[float]
    ("stop-reading:resume-after=none", StopReading()),
    ("stall-handshake:stage=server_hello", StallHandshake(stage="server_hello")),  # str
    ("reset:on-request=none", ResetConnection()),  # Optional[int]
    ("reset:connections=2", ResetConnection(connections=(2,))),  # tuples, ';' between items
    ("reset:connections=3;1;2", ResetConnection(connections=(1, 2, 3))),
    ("reset:opcode=QUERY;execute", ResetConnection(opcode=("QUERY", "EXECUTE"))),
    ("reset:opcode=query", ResetConnection(opcode="QUERY")),
    ("close:query=FROM app.users", CloseConnection(query="FROM app.users")),  # text: a substring match
    ("close:query=SELECT a\\, b FROM t WHERE k = 1", CloseConnection(query="SELECT a, b FROM t WHERE k = 1")),
    ("close:query=a\\;b", CloseConnection(query="a;b")),
    ("close:probability=0.5,seed=9", CloseConnection(probability=0.5, seed=9)),
    (" reset : on-request = 3 ", ResetConnection(on_request=3)),  # spaces around names and numbers
])
def test_every_argument_type_is_parsed_by_its_annotation(spec, expected):
    assert parse_fault(spec) == expected


def test_query_regex_is_a_compiled_regex():
    fault = parse_fault(r"close:query-regex=^SELECT .* FROM app\.users\b,opcode=QUERY")
    assert isinstance(fault, CloseConnection)
    assert isinstance(fault.query, re.Pattern)
    assert fault.query.pattern == r"^SELECT .* FROM app\.users\b" and fault.opcode == ("QUERY",)
    assert fault._query_matches("SELECT name FROM app.users WHERE id = 1")
    assert not fault._query_matches("SELECT name FROM app.users_by_name")


@pytest.mark.parametrize("fault", [
    KeyUpdate(on_request=0, every=4, request_peer=False),
    ResetConnection(connections=(1, 3), opcode=("QUERY", "EXECUTE"), query="a, b; c", probability=0.25, seed=3),
    StopReading(min_pending=1024, resume_after=1.5),
    DribbleOutput(seed=1, max_piece=7),
    StallHandshake(stage="server_hello"),
    CloseConnection(query=re.compile("^USE ")),
])
def test_the_startup_line_is_a_spec_that_gives_the_same_fault(fault):
    spec = fault_spec(fault)
    again = parse_fault(spec)
    if isinstance(fault.query, re.Pattern):
        assert "query-regex=^USE " in spec
        assert again.query.pattern == fault.query.pattern and type(again) is type(fault)
    else:
        assert again == fault, spec


def test_a_predicate_is_shown_as_one():
    assert fault_spec(ResetConnection(connections=lambda info: info.number > 1)) == "reset:connections=<predicate>"


class _Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class _EveryType(Fault):
    """A fault only this test knows, with a field of every type a fault may
    have. Nothing in the registry names it."""

    count: int = 1
    ratio: float = 0.5
    loud: bool = False
    label: str = "x"
    limit: Optional[int] = None
    sizes: Tuple[int, ...] = ()
    names: Tuple[str, ...] = ("a",)
    side: Literal["in", "out", "both"] = "both"
    mode: _Mode = _Mode.FAST
    needed: int = 0

    TRIGGERS = frozenset({"connections", "on_request", "opcode", "query", "probability"})


def _every_type(self: FaultPlan, needed: int, *, count: int = 1, side: str = "both", **triggers: Any) -> Fault:
    """The test-only verb: `needed` is required, as a verb's positional argument may be."""
    return self.add(_EveryType(needed=needed, count=count, side=side, **triggers))  # type: ignore[arg-type]


@pytest.fixture
def every_type_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(faults.VERBS, "every_type", _EveryType)
    monkeypatch.setattr(FaultPlan, "every_type", _every_type, raising=False)


def test_a_fault_added_to_verbs_is_parsed_with_no_change_to_the_registry(every_type_fault):
    fault = parse_fault("every-type:needed=5,count=2,ratio=0.125,loud=yes,label=hi there,limit=9,sizes=1;2;3,"
                        "names=p;q,side=in,mode=SLOW,on-request=4,opcode=QUERY,query=users,seed=3")
    assert fault == _EveryType(needed=5, count=2, ratio=0.125, loud=True, label="hi there", limit=9, sizes=(1, 2, 3),
                               names=("p", "q"), side="in", mode=_Mode.SLOW, on_request=4, opcode="QUERY",
                               query="users", seed=3)
    assert parse_fault("every-type:needed=1,names=solo,sizes=7,limit=none") == _EveryType(
        needed=1, names=("solo",), sizes=(7,))
    assert "every-type" in fault_names()
    assert {a.cli: a.shown_type for a in arguments("every-type")} == {
        "needed": "INT", "count": "INT", "side": "in|out|both", "ratio": "NUMBER", "loud": "true|false", "label": "TEXT",
        "limit": "INT or none", "sizes": "INT[;INT...]", "names": "TEXT[;TEXT...]", "mode": "fast|slow",
        "connections": "N[;N...]", "on-request": "INT or none", "opcode": "OPCODE[;OPCODE...]", "query": "TEXT",
        "query-regex": "REGEX", "probability": "NUMBER", "seed": "INT"}
    assert parse_fault(fault_spec(fault)) == fault
    listing = describe()
    assert "every-type  (_EveryType) A fault only this test knows, with a field of every type a fault may have.\n" \
        in listing
    assert re.search(r"\n    needed=INT +required\n", listing)
    assert re.search(r"\n    mode=fast\|slow +default fast\n", listing)


@pytest.mark.parametrize("spec, message", [
    ("every-type:count=2", "every-type: needs needed=INT"),
    ("every-type:needed=1,loud=maybe", "every-type: loud must be true or false (yes/no, 1/0); got 'maybe'"),
    ("every-type:needed=1,ratio=half", "every-type: ratio must be a number; got 'half'"),
    ("every-type:needed=1,limit=many", "every-type: limit must be an integer or 'none'; got 'many'"),
    ("every-type:needed=1,sizes=1;x", "every-type: sizes must be an integer, several separated by ';'; got '1;x'"),
    ("every-type:needed=1,side=up", "every-type: side must be one of 'in', 'out', 'both'; got 'up'"),
    ("every-type:needed=1,mode=warp", "every-type: mode must be one of 'fast', 'slow'; got 'warp'"),
])
def test_bad_values_of_every_type_name_the_argument_the_value_and_the_type(every_type_fault, spec, message):
    with pytest.raises(FaultSpecError) as raised:
        parse_fault(spec)
    assert str(raised.value) == message


# --------------------------------------------------------------------------
# Errors: one message each, naming what is wrong and what fits
# --------------------------------------------------------------------------

_TAKES_KEY_UPDATE = "every, request-peer, connections, on-request, opcode, query, query-regex, probability, seed"


@pytest.mark.parametrize("spec, message", [
    ("kye-update", "kye-update: no such fault; did you mean key-update? (--fault list shows them all)"),
    ("rest", "rest: no such fault; did you mean reset? (--fault list shows them all)"),
    ("xyzzy", "xyzzy: no such fault (--fault list shows them all)"),
    ("", "'': expected NAME[:key=value,...] (--fault list shows the names)"),
    (":every=2", "':every=2': expected NAME[:key=value,...] (--fault list shows the names)"),
    ("key-update:evry=2", f"key-update: unknown argument 'evry' (did you mean every?); it takes {_TAKES_KEY_UPDATE}"),
    ("key-update:bogus=2", f"key-update: unknown argument 'bogus'; it takes {_TAKES_KEY_UPDATE}"),
    ("key-update:every", f"key-update: expected key=value, got 'every' (it takes {_TAKES_KEY_UPDATE})"),
    ("key-update:=3", f"key-update: expected key=value, got '=3' (it takes {_TAKES_KEY_UPDATE})"),
    ("key-update:every=two", "key-update: every must be an integer; got 'two'"),
    ("key-update:every=1.5", "key-update: every must be an integer; got '1.5'"),
    ("key-update:request-peer=maybe", "key-update: request-peer must be true or false (yes/no, 1/0); got 'maybe'"),
    ("key-update:every=1,every=2", "key-update: every is given twice"),
    ("key-update:every=1,EVERY=2", "key-update: every is given twice"),
    ("stop-reading:resume-after=soon", "stop-reading: resume-after must be a number or 'none'; got 'soon'"),
    ("reset:connections=a", "reset: connections must be connection numbers (from 1), several separated by ';'; "
                            "got 'a'"),
    ("reset:opcode=", "reset: ResetConnection opcode must be one of 'STARTUP', 'OPTIONS', 'QUERY', 'PREPARE', "
                      "'EXECUTE', 'REGISTER', 'BATCH', 'AUTH_RESPONSE'; got ''"),
    ("close:query-regex=(", "close: query-regex '(' is not a regular expression: missing ), unterminated "
                            "subpattern at position 0"),
    ("close:query=x,query-regex=y", "close: give query (text) or query-regex, not both"),
    ("dribble:on-request=3", "dribble: unknown argument 'on-request'; it takes max-piece, max-delay, connections, "
                             "probability, seed"),
    # The fault's own checks pass through, after the fault's name.
    ("key-update:every=-2", "key-update: KeyUpdate every must be >= 0, got -2"),
    ("stall-handshake:stage=finished", "stall-handshake: StallHandshake stage must be one of 'client_hello', "
                                       "'server_hello'; got 'finished'"),
    ("dribble:max-piece=0", "dribble: DribbleOutput max_piece must be >= 1, got 0"),
    ("reset:connections=0", "reset: ResetConnection connections must be >= 1, got 0"),
])
def test_every_error_names_what_is_wrong(spec, message):
    with pytest.raises(FaultSpecError) as raised:
        parse_fault(spec)
    assert str(raised.value) == message


def test_what_it_models_is_the_first_sentence_of_the_docstring():
    assert what_it_models(ResetConnection) == ("A node process killed, or a firewall dropping state: a TCP RST "
                                               "when the request it is aimed at arrives (default: right after "
                                               "the handshake).")

    class Abbreviated(Fault):
        """A path that drops, e.g. a NAT timing out. Then more."""

    assert what_it_models(Abbreviated) == "A path that drops, e.g. a NAT timing out."


# --------------------------------------------------------------------------
# The command line: --fault list, errors, the startup lines
# --------------------------------------------------------------------------

def test_fault_list_prints_every_fault_with_its_arguments_and_what_it_models(capsys):
    assert cli.main(["serve", "--fault", "list"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(faults.VERBS) >= 6
    for verb, cls in faults.VERBS.items():
        name = verb.replace("_", "-")
        block = re.search(rf"(?m)^{re.escape(name)}  \({cls.__name__}\) (.*)\n((?:    .*\n?)*)", out)
        assert block, f"{name} is not listed:\n{out}"
        assert block[1] == what_it_models(cls) and block[1].endswith(".")
        for argument in arguments(name):
            shown = "required" if argument.required else f"default {argument.shown_default()}"
            assert re.search(rf"(?m)^    {re.escape(argument.cli)}={re.escape(argument.shown_type)} +{re.escape(shown)}",
                             block[2]), (name, argument, block[2])
    assert re.search(r"(?m)^    every=INT +default 0$", out)
    assert re.search(r"(?m)^    request-peer=true\|false +default true$", out)


def test_fault_list_by_subprocess_lists_every_verb():
    result = run_cli("serve", "--fault", "list")
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"(?m)^(\S+)  \(", result.stdout)
    assert listed == [verb.replace("_", "-") for verb in faults.VERBS]


@pytest.mark.parametrize("argv, line", [
    (["--fault", "kye-update"],
     "fakecql serve: error: --fault kye-update: no such fault; did you mean key-update? (--fault list shows them all)"),
    (["--fault", "key-update:evry=2"],
     f"fakecql serve: error: --fault key-update: unknown argument 'evry' (did you mean every?); "
     f"it takes {_TAKES_KEY_UPDATE}"),
    (["--fault", "reset", "--fault", "key-update:every=two"],
     "fakecql serve: error: --fault key-update: every must be an integer; got 'two'"),
    (["--fault", "key-update:every=-1"], "fakecql serve: error: --fault key-update: KeyUpdate every must be >= 0, got -1"),
])
def test_a_bad_fault_is_one_error_line_and_status_2(argv, line, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["serve", "--port", "0", "--tls", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert assert_one_error_line(err) == line
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


def test_a_bad_fault_by_subprocess():
    result = run_cli("serve", "--port", "0", "--fault", "stop-reading:resume-after=soon")
    assert result.returncode == 2
    assert result.stdout == ""
    line = assert_one_error_line(result.stderr, prog="python -m fakecql serve")
    assert line == ("python -m fakecql serve: error: --fault stop-reading: resume-after must be a number or "
                    "'none'; got 'soon'")


def test_serve_prints_one_line_per_fault_and_applies_them(capsys, monkeypatch):
    def client(server: CQLServer) -> object:
        return list(server.faults)  # the plan of the running node

    served = serve_in_process(["--fault", "key-update:on-request=0,every=4",
                               "--fault", "reset:opcode=QUERY;EXECUTE,query=FROM app.users"], client, capsys,
                              monkeypatch)
    lines = served.out.splitlines()
    assert served.err == ""
    assert lines[0] == f"listening on 127.0.0.1:{served.server.port} (plain)"
    assert lines[1:3] == ["fault: key-update:every=4,request-peer=true,on-request=0",
                          "fault: reset:opcode=QUERY;EXECUTE,query=FROM app.users"]
    assert served.answer == [KeyUpdate(on_request=0, every=4),
                             ResetConnection(opcode=("QUERY", "EXECUTE"), query="FROM app.users")]


# --------------------------------------------------------------------------
# From a separate process, seen by the client's own OpenSSL
# --------------------------------------------------------------------------

def _tls13_client(ca_pem: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_pem))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


@pytest.mark.parametrize("flags, expected_reads", [
    (["--fault", "key-update"], 1),
    ([], 0),  # negative control: without the fault, no KeyUpdate
    (["--fault", "key-update:on-request=0,every=2,request-peer=false"], 3),
], ids=["key-update", "no-fault", "after-handshake-every-2"])
def test_serve_key_update_is_seen_by_the_clients_openssl(flags, expected_reads, tmp_path):
    with ServeProcess("--tls", "--certs-dir", str(tmp_path), *flags) as served:
        served.wait_listening()
        out = served.read_through("cqlsh:")
        assert [line for line in out if line.startswith("fault")] == [
            f"fault: {fault_spec(parse_fault(spec))}" for spec in flags[1::2]]
        context = _tls13_client(tmp_path / "ca.pem")
        seen = record_handshake_messages(context)
        with RawClient((served.host, served.port), ssl_context=context, timeout=10) as client:
            assert isinstance(client.start(), Ready)  # OPTIONS and STARTUP
            for stream in (1, 2):
                rows = client.request(Query(query="SELECT release_version FROM system.local"), stream=stream)
                assert isinstance(rows, RowsResult)
            assert client.sock.version() == "TLSv1.3"
        status, _, err = served.stop()
    assert status == 0, err
    read = key_updates(seen, "read")
    written = key_updates(seen, "write")
    request_peer = "request-peer=false" not in " ".join(flags)
    # KeyUpdate: type 24, length 1, request_update (RFC 8446, 4.6.3).
    assert read == [b"\x18\x00\x00\x01" + bytes([int(request_peer)])] * expected_reads
    # update_requested obliges the client to update its own keys, and say so with its next write.
    assert written == ([b"\x18\x00\x00\x01\x00"] * expected_reads if request_peer else [])


def test_serve_expired_certificate_fails_the_clients_verification(tmp_path):
    with ServeProcess("--tls", "--certs-dir", str(tmp_path), "--fault", "expired-certificate") as served:
        served.wait_listening()
        out = served.read_through("cqlsh:")
        assert "fault: expired-certificate" in out
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))  # trusts the node's CA
        with socket.create_connection((served.host, served.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError) as raised:
                context.wrap_socket(raw, server_hostname=served.host)
        assert raised.value.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED
        assert "certificate has expired" in raised.value.verify_message
        status, _, err = served.stop()
    assert status == 0, err
    # Negative control: the same client of a node without the fault (a new node, a new CA in ca.pem).
    with ServeProcess("--tls", "--certs-dir", str(tmp_path)) as served:
        served.wait_listening()
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with RawClient((served.host, served.port), ssl_context=context, timeout=10) as client:
            assert isinstance(client.start(), Ready)
        status, _, err = served.stop()
    assert status == 0, err


def test_serve_nodes_puts_the_faults_on_every_node():
    # reset:on-request=1 resets each connection at its first request, on every node;
    # a second node's answer proves it is not the first's alone.
    node_line = re.compile(r"^node (?P<index>\d+) listening on (?P<host>[0-9.]+):(?P<port>\d+) \(plain\)")
    with ServeProcess("--nodes", "2", "--fault", "reset:on-request=1") as served:
        out = served.read_through("cqlsh:")
        nodes = [m for m in map(node_line.match, out) if m]
        assert len(nodes) == 2, out
        assert "fault on every node: reset:on-request=1" in out
        for node in nodes:
            with RawClient((node["host"], int(node["port"])), timeout=10) as client:
                with pytest.raises((ConnectionError, EOFError)):
                    client.start()
        status, _, err = served.stop()
    assert status == 0, err
