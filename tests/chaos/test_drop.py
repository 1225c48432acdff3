"""Holding and dropping a connection: the pure loop and the real socket adapter."""

from __future__ import annotations

import socket
import time

import pytest

from shared.chaos.drop import SocketConnection, connection_from_environ, hold_and_drop
from shared.resilience.clock import SYSTEM_CLOCK, FakeClock


class FakeConnection:
    def __init__(self, clock: FakeClock, gone_after_s: float | None) -> None:
        self.clock = clock
        self.gone_at = None if gone_after_s is None else clock.monotonic() + gone_after_s
        self.closed = False

    def client_gone(self, wait_s: float) -> bool:
        self.clock.sleep(wait_s)
        return self.gone_at is not None and self.clock.monotonic() >= self.gone_at

    def close(self) -> None:
        self.closed = True


def test_holds_until_the_cap_then_closes() -> None:
    clock = FakeClock()
    conn = FakeConnection(clock, None)
    outcome = hold_and_drop(conn, hold_s=30.0, clock=clock)
    assert outcome.held_s == 30.0
    assert not outcome.client_gave_up
    assert outcome.closed
    assert conn.closed
    assert max(clock.sleeps) <= 0.25  # polls, so a leaving client is noticed quickly


def test_stops_holding_when_the_client_gives_up() -> None:
    clock = FakeClock()
    conn = FakeConnection(clock, 2.0)
    outcome = hold_and_drop(conn, hold_s=30.0, clock=clock)
    assert outcome.client_gave_up
    assert 2.0 <= outcome.held_s <= 2.25
    assert conn.closed


def test_without_a_socket_it_only_waits() -> None:
    clock = FakeClock()
    outcome = hold_and_drop(None, hold_s=5.0, clock=clock)
    assert outcome.held_s == 5.0
    assert not outcome.closed
    assert connection_from_environ({}) is None
    assert connection_from_environ({"gunicorn.socket": "not a socket"}) is None


def test_socket_adapter_sees_the_peer_leave_and_shuts_down() -> None:
    server, client = socket.socketpair()
    try:
        conn = connection_from_environ({"werkzeug.socket": server})
        assert isinstance(conn, SocketConnection)
        assert conn.client_gone(0.01) is False
        client.sendall(b"unread body")  # bytes arriving are not a departure
        assert conn.client_gone(0.01) is False
        client.close()
        assert conn.client_gone(1.0) is True
        started = time.monotonic()
        conn.close()
        conn.close()  # idempotent
        assert time.monotonic() - started < 0.5
    finally:
        server.close()


def test_real_hold_returns_when_peer_closes() -> None:
    server, client = socket.socketpair()
    try:
        client.close()
        outcome = hold_and_drop(SocketConnection(server), hold_s=5.0, clock=SYSTEM_CLOCK)
        assert outcome.client_gave_up
        assert outcome.held_s < 1.0
    finally:
        server.close()


def test_closing_sends_eof_to_the_client_without_a_response() -> None:
    server, client = socket.socketpair()
    try:
        hold_and_drop(SocketConnection(server), hold_s=0.05, clock=SYSTEM_CLOCK)
        client.settimeout(2)
        assert client.recv(10) == b""
    finally:
        server.close()
        client.close()


def test_held_drops_are_capped_and_slots_come_back() -> None:
    from shared.chaos.drop import HeldDrops
    from shared.chaos.errors import TooManyDrops

    held = HeldDrops()
    with held.slot(2, retry_after_s=30), held.slot(2, retry_after_s=30):
        assert held.held == 2
        with pytest.raises(TooManyDrops) as info, held.slot(2, retry_after_s=30):
            pass
        assert (info.value.status_code, info.value.code) == (503, "too_many_drops")
        assert info.value.headers() == {"Retry-After": "30"}
    assert held.held == 0
    with pytest.raises(RuntimeError), held.slot(1, retry_after_s=1):
        raise RuntimeError("the hold failed")
    assert held.held == 0  # released on the way out, whatever happened
    with pytest.raises(TooManyDrops), held.slot(0, retry_after_s=1):
        pass  # a cap of 0 refuses every drop
