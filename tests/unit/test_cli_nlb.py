# `serve --nodes N --nlb` flags (issue 12, part nlb): misuse gets argparse's
# usage and one error line naming the flag (status 2), before anything is
# started; --nodes misuse says the same with --nlb as without (the cluster's
# own checks, tests/unit/test_cli_cluster.py). Serving itself is tested end to end, with scylla-driver, in
# tests/integration/test_nlb.py.
from __future__ import annotations

import pytest

from fakecql import cli


@pytest.mark.parametrize("argv, message", [
    (["serve", "--nlb"], "--nlb needs --nodes (the NLB stands in front of a cluster)"),
    (["serve", "--nodes", "3", "--nlb-host", "127.0.0.100"], "--nlb-host needs --nlb"),
    (["serve", "--nodes", "0", "--nlb"], "every data center needs at least 1 node, got '0'"),
    (["serve", "--nodes", "three", "--nlb"], "expected a number of nodes such as 3"),
    (["serve", "--nodes", "3", "--nlb", "--nlb-host", "nlb.local"], "--nlb-host"),
    (["serve", "--nodes", "3", "--nlb", "--host", "::1"], "--nodes needs --host to be an IPv4 loopback address"),
    (["serve", "--nodes", "3", "--nlb", "--host", "127.255.255.253"],
     "--nodes 3 needs 3 addresses from 127.255.255.253, but 127.255.255.1-127.255.255.254 leaves room for 2"),
], ids=["nlb-without-nodes", "nlb-host-without-nlb", "zero-nodes", "nodes-not-a-number", "nlb-host-not-an-address",
        "nodes-ipv6", "nodes-past-the-end"])
def test_misuse_is_one_error_line(argv, message, capsys):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: fakecql serve ")
    errors = [line for line in err.splitlines() if line.startswith("fakecql serve: error: ")]
    assert len(errors) == 1 and message in errors[0], err


def test_help_lists_the_flags(capsys):
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--nodes", "--nlb", "--nlb-host"):
        assert flag in out
