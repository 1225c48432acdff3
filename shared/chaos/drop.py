"""``drop`` mode: accept a request, never answer, and close the connection without a response.

The handler holds the connection until the client gives up or ``CHAOS_DROP_HOLD_S`` passes, then
shuts the socket down under the server. The socket comes from the WSGI environ (gunicorn, as Cloud
Functions runs it, and werkzeug's dev server both expose it); where none is reachable (an in-process
test client) the hold still happens and the handler answers a marked fallback instead.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from shared.chaos.errors import TooManyDrops
from shared.resilience.clock import Clock

POLL_S = 0.25
"""How often (seconds) a held connection checks whether the client went away."""


class HeldConnection(Protocol):
    """A client connection being held open."""

    def client_gone(self, wait_s: float) -> bool:
        """Wait up to ``wait_s`` seconds; True as soon as the client has closed its end."""
        ...

    def close(self) -> None:
        """End the connection without sending anything."""
        ...


@dataclass(frozen=True, slots=True)
class DropOutcome:
    """How a drop ended. ``held_s`` in seconds; ``closed`` when the socket was shut down here."""

    held_s: float
    client_gave_up: bool
    closed: bool


class SocketConnection:
    """A :class:`HeldConnection` over the server's client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def client_gone(self, wait_s: float) -> bool:
        try:
            readable, _, _ = select.select([self._sock], [], [], wait_s)
            if not readable:
                return False
            # Readable and empty is EOF: the client closed. Bytes still arriving (an unread body, a
            # pipelined request) are drained: nobody will ever read them, and leaving them would
            # hide the EOF behind them.
            return self._sock.recv(65536, socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        # shutdown, not close: the server still owns the file descriptor and will close it after
        # its own (now failing, silently ignored) attempt to write a response.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)


def connection_from_environ(environ: Mapping[str, object]) -> HeldConnection | None:
    """The client connection of a WSGI request, when the server exposes its socket."""
    for key in ("gunicorn.socket", "werkzeug.socket"):
        sock = environ.get(key)
        if isinstance(sock, socket.socket):
            return SocketConnection(sock)
    return None


def hold_and_drop(
    connection: HeldConnection | None, *, hold_s: float, clock: Clock, poll_s: float = POLL_S
) -> DropOutcome:
    """Hold ``connection`` for up to ``hold_s`` seconds (less if the client leaves), then close it.

    Without a connection the full hold is slept on ``clock`` and nothing is closed.
    """
    started = clock.monotonic()
    if connection is None:
        clock.sleep(hold_s)
        return DropOutcome(clock.monotonic() - started, client_gave_up=False, closed=False)
    deadline = started + hold_s
    gave_up = False
    while (remaining := deadline - clock.monotonic()) > 0:
        if connection.client_gone(min(poll_s, remaining)):
            gave_up = True
            break
    connection.close()
    return DropOutcome(clock.monotonic() - started, client_gave_up=gave_up, closed=True)


class HeldDrops:
    """How many drops this instance holds at once, with a cap.

    Every held drop occupies a request thread for up to ``CHAOS_DROP_HOLD_S``. Past the cap a drop
    is refused (503 + ``Retry-After``) so threads stay free for other callers, including the
    operator's request that stops the experiment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    @contextlib.contextmanager
    def slot(self, limit: int, *, retry_after_s: int) -> Iterator[None]:
        """Hold one slot for the block; :class:`TooManyDrops` when ``limit`` are taken."""
        with self._lock:
            if self._held >= limit:
                raise TooManyDrops(
                    f"this instance already holds {self._held} dropped connections "
                    f"(CHAOS_MAX_HELD_DROPS={limit}); try again later",
                    retry_after_s=retry_after_s,
                )
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1


HELD_DROPS: Final = HeldDrops()
"""The process's count of held drops."""
