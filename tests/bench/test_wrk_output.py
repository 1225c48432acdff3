"""The benchmark's reading of ``wrk --latency`` output (a misread would report a wrong ratio)."""

from __future__ import annotations

import pytest

from bench.bench_chaos import parse_wrk

SAMPLE = """Running 1s test @ http://127.0.0.1:18777/x
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms    1.40ms  16.59ms   94.75%
    Req/Sec     1.89k   463.53     2.36k    72.73%
  Latency Distribution
     50%  910.00us
     75%    1.18ms
     90%    1.65ms
     99%    1.20s
  2065 requests in 1.10s, 1.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   1877.94
Transfer/sec:      0.93MB
"""


def test_requests_errors_duration_and_percentiles() -> None:
    result = parse_wrk(SAMPLE)
    assert result.requests == 2065
    assert result.seconds == pytest.approx(1.10)
    assert result.errors == 7 + 2 + 1
    assert result.reported == (pytest.approx(0.91), pytest.approx(1200.0))
    assert result.rps == pytest.approx(2065 / 1.10)


def test_clean_run_has_no_errors() -> None:
    clean = "\n".join(line for line in SAMPLE.splitlines() if "errors" not in line.lower()
                      and "Non-2xx" not in line)  # fmt: skip
    assert parse_wrk(clean).errors == 0


def test_unreadable_output_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="unreadable"):
        parse_wrk("wrk: connection refused")


def test_a_run_of_a_minute_or_more_is_read_in_minutes() -> None:
    minute = SAMPLE.replace("2065 requests in 1.10s", "49712 requests in 1.00m")
    result = parse_wrk(minute)
    assert result.requests == 49712
    assert result.seconds == pytest.approx(60.0)
