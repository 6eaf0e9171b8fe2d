# The sans-IO delay line (fakecql/wireline.py), driven with a fake clock:
# bytes come out in order and whole, latency and jitter delay them (jitter
# never reorders), a rate cap lets them out in slices of a hundredth of a
# second's worth, the sender's FIN (end) comes out behind every byte, and an
# idle line is one the connection may skip.
from __future__ import annotations

import random
from typing import List, Optional, Tuple

import pytest

from fakecql.wireline import WireLine


def _drain(line: WireLine, start: float, *, limit: int = 100_000) -> List[Tuple[float, bytes]]:
    """Take from `line` at every time it asks for, from `start`, until it has nothing
    more to come: the (time, bytes) it let out."""
    out: List[Tuple[float, bytes]] = []
    now: Optional[float] = start
    for _ in range(limit):
        assert now is not None
        data, wake = line.take(now)
        if data:
            out.append((now, data))
        if wake is None:
            return out
        assert wake > now, f"a line must ask for a later time, asked {wake} at {now}"
        now = wake
    raise AssertionError(f"the line did not drain in {limit} takes")


def test_a_fresh_line_is_idle_and_lets_bytes_straight_through():
    line = WireLine()
    assert line.idle and line.empty
    line.push(5.0, b"abc")
    assert not line.idle  # something is queued
    assert line.take(5.0) == (b"abc", None)
    assert line.idle and line.bytes_through == 3


def test_latency_delays_every_chunk_and_keeps_the_order():
    line = WireLine()
    line.set_latency(0.25)
    assert not line.idle  # a line with latency is never skipped, even empty
    line.push(1.0, b"one ")
    line.push(1.1, b"two ")
    assert line.take(1.2) == (b"", 1.25)
    assert line.take(1.25) == (b"one ", 1.35)
    assert line.take(1.4) == (b"two ", None)
    assert line.empty and not line.idle


def test_chunks_due_together_come_out_together():
    line = WireLine()
    line.set_latency(0.1)
    for piece in (b"a", b"b", b"c"):
        line.push(0.0, piece)
    assert line.take(0.1) == (b"abc", None)


def test_jitter_never_reorders_and_never_loses_a_byte():
    line = WireLine()
    line.set_latency(0.05, jitter=0.05, rng=random.Random(3))
    sent = [bytes([i]) * (1 + i % 7) for i in range(200)]
    for i, chunk in enumerate(sent):
        line.push(i * 0.001, chunk)  # pushed faster than the jitter's spread
    out = _drain(line, 0.0)
    assert b"".join(data for _, data in out) == b"".join(sent)
    times = [when for when, _ in out]
    assert times == sorted(times)
    # The jitter really varied the delays: the chunks did not all come out on a fixed grid.
    assert len(set(round(t - i * 0.001, 6) for i, t in enumerate(times))) > 1 or len(out) < len(sent)


def test_jitter_is_never_below_zero_delay():
    line = WireLine()
    line.set_latency(0.0, jitter=1.0, rng=random.Random(0))
    for i in range(50):
        line.push(10.0, b"x")
        data, wake = line.take(9.999)  # nothing is ever due before it was pushed
        assert data == b"" and wake is not None and wake >= 10.0
        _drain(line, wake)


def test_the_same_seed_gives_the_same_delays():
    def delays(seed: int) -> List[float]:
        line = WireLine()
        line.set_latency(0.1, jitter=0.09, rng=random.Random(seed))
        found = []
        for i in range(20):
            line.push(float(i), b"x")
            found.append(line.take(float(i))[1])
            _drain(line, found[-1])  # type: ignore[arg-type]
        return found  # type: ignore[return-value]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


def test_a_rate_cap_lets_out_slices_of_a_hundredth_of_a_second():
    line = WireLine()
    line.set_rate(10_000)  # slices of 100 bytes, one every 0.01 s
    line.push(0.0, b"x" * 1050)
    out = _drain(line, 0.0)
    assert [len(data) for _, data in out] == [100] * 10 + [50]
    times = [when for when, _ in out]
    assert times == pytest.approx([i * 0.01 for i in range(11)])
    # 1050 bytes at 10 000 bytes/s: the last slice leaves at 0.1 s; the line is free again at 0.105.
    assert b"".join(d for _, d in out) == b"x" * 1050


def test_a_rate_cap_spans_chunks_and_keeps_their_order():
    line = WireLine()
    line.set_rate(1000)  # 10-byte slices
    line.push(0.0, b"abcdefghijklmno")
    line.push(0.0, b"pqrst")
    out = _drain(line, 0.0)
    assert b"".join(d for _, d in out) == b"abcdefghijklmnopqrst"
    # A slice ends at a chunk's end; each waits for the time the one before it took.
    assert [(round(t, 6), len(d)) for t, d in out] == [(0.0, 10), (0.01, 5), (0.015, 5)]


def test_a_tiny_rate_still_sends_one_byte_at_a_time():
    line = WireLine()
    line.set_rate(50)  # a hundredth of a second's worth is 0.5 byte: slices of 1
    line.push(0.0, b"abc")
    out = _drain(line, 0.0)
    assert [d for _, d in out] == [b"a", b"b", b"c"]
    assert [t for t, _ in out] == pytest.approx([0.0, 0.02, 0.04])


def test_latency_and_rate_together():
    line = WireLine()
    line.set_latency(1.0)
    line.set_rate(100)  # 1-byte slices, 0.01 s each
    line.push(0.0, b"ab")
    out = _drain(line, 0.0)
    assert out == [(1.0, b"a"), (pytest.approx(1.01), b"b")]


def test_end_comes_out_behind_every_byte():
    line = WireLine()
    line.set_latency(0.5)
    line.push(0.0, b"data")
    line.end(0.1)
    assert line.ending and not line.ended
    assert line.take(0.5) == (b"data", 0.6)
    assert not line.ended
    assert line.take(0.6) == (b"", None)
    assert line.ended
    with pytest.raises(ValueError, match="after its end"):
        line.push(0.7, b"late")


def test_end_waits_for_the_rate_cap_too():
    line = WireLine()
    line.set_rate(1000)
    line.push(0.0, b"x" * 30)  # three 10-byte slices: free again at 0.03
    line.end(0.0)
    out = _drain(line, 0.0)
    assert sum(len(d) for _, d in out) == 30
    assert line.ended


def test_end_on_an_empty_line_with_latency_comes_after_the_latency():
    line = WireLine()
    line.set_latency(0.2)
    line.end(1.0)
    assert line.take(1.0) == (b"", 1.2)
    assert line.take(1.2) == (b"", None) and line.ended


def test_end_on_an_idle_line_is_at_once():
    line = WireLine()
    line.end(3.0)
    assert not line.idle  # an ended line is never skipped: nothing may pass it
    assert line.take(3.0) == (b"", None) and line.ended


def test_a_line_made_idle_again_lets_bytes_through():
    line = WireLine()
    line.set_rate(100)
    line.push(0.0, b"abc")
    _drain(line, 0.0)
    line.set_rate(None)
    assert line.idle


@pytest.mark.parametrize("call, message", [
    (lambda line: line.set_latency(-0.1), "latency and jitter must be >= 0"),
    (lambda line: line.set_latency(0.1, jitter=-1), "latency and jitter must be >= 0"),
    (lambda line: line.set_rate(0), "rate must be > 0"),
])
def test_bad_settings_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(WireLine())
