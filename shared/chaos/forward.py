"""Forwarding to a configured upstream: ``/chaos_proxy/<upstream>/<path>`` → ``<base_url>/<path>``.

Only names from configuration are reachable; the request never supplies a host (no SSRF). Hop-by-hop
headers are stripped both ways, Host is rewritten to the upstream's, ``X-Forwarded-For`` gets the
client appended, trace headers are propagated, and the upstream's body is streamed back undecoded
(its ``Content-Encoding`` and ``Content-Length`` stay true). ``requests`` is imported on first use
and one :class:`requests.Session` per process keeps connections to upstreams alive.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

from shared.chaos.config import Upstream
from shared.chaos.errors import InvalidParameter, UpstreamFailed

if TYPE_CHECKING:
    import requests

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
"""RFC 9110 §7.6.1 connection-specific headers, plus the legacy ``Proxy-Connection``."""

# Recomputed by the HTTP client for the new connection, never copied.
_RECOMPUTED: Final = frozenset({"host", "content-length"})
# Always written by the serving WSGI server (gunicorn adds both unconditionally); copying the
# upstream's would send them twice.
_SERVER_WRITTEN: Final = frozenset({"date", "server"})
CONNECT_TIMEOUT_S: Final = 3.05
STREAM_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """What will be sent upstream: a URL on the upstream's host and the filtered headers."""

    upstream: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """The upstream's answer: status, end-to-end headers and the body as a byte stream."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: Iterable[bytes]


def upstream_url(upstream: Upstream, raw_path: str, raw_query: str) -> str:
    """``base_url`` + the still-percent-encoded rest of the path + the query, on the same host.

    Raises :class:`InvalidParameter` for dot segments, which some servers would resolve above the
    base URL's prefix.
    """
    if raw_path and not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    if has_dot_segment(raw_path):
        raise InvalidParameter(
            "path",
            "the forwarded path must not contain . or .. segments",
            allowed="/<upstream>/<path without dot segments>",
            got=raw_path,
        )
    url = upstream.base_url + raw_path + ("?" + raw_query if raw_query else "")
    # Defence in depth: whatever the path holds, the request goes to the configured host.
    if urlsplit(url).netloc != urlsplit(upstream.base_url).netloc:
        raise InvalidParameter("path", "path escapes the upstream", allowed="a path", got=raw_path)
    return url


def has_dot_segment(raw_path: str) -> bool:
    """Whether ``raw_path``, as sent or decoded once or twice, has a ``.`` or ``..`` segment.

    Servers and frameworks behind a proxy decode a path once more than it did (``%2F`` becomes a
    separator, ``%252e`` a dot) and some split on ``\\`` or drop ``;params``: any of those forms
    that climbs could reach above the upstream's base URL.
    """
    once = unquote(raw_path)
    for form in (raw_path, once, unquote(once)):
        for segment in form.replace("\\", "/").split("/"):
            if segment.split(";", 1)[0] in (".", ".."):
                return True
    return False


def forward_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    client_addr: str | None,
    original_host: str | None,
    scheme: str,
    trace_headers: Mapping[str, str],
) -> tuple[tuple[str, str], ...]:
    """The request headers to send upstream.

    Drops hop-by-hop headers (and any the ``Connection`` header names), Host and Content-Length;
    appends ``client_addr`` to ``X-Forwarded-For``; sets ``X-Forwarded-Host``/``-Proto`` unless
    already present; replaces the trace headers with ``trace_headers``.
    """
    pairs = list(incoming)
    dropped = HOP_BY_HOP | _RECOMPUTED | _connection_tokens(pairs)
    trace_names = {name.lower() for name in trace_headers}
    out: list[tuple[str, str]] = []
    forwarded_for: str | None = None
    present: set[str] = set()
    for name, value in pairs:
        lower = name.lower()
        if lower in dropped or lower in trace_names:
            continue
        if lower == "x-forwarded-for":
            forwarded_for = value if forwarded_for is None else f"{forwarded_for}, {value}"
            continue
        present.add(lower)
        out.append((name, value))
    if client_addr:
        forwarded_for = client_addr if forwarded_for is None else f"{forwarded_for}, {client_addr}"
    if forwarded_for is not None:
        out.append(("X-Forwarded-For", forwarded_for))
    if original_host and "x-forwarded-host" not in present:
        out.append(("X-Forwarded-Host", original_host))
    if "x-forwarded-proto" not in present:
        out.append(("X-Forwarded-Proto", scheme))
    out.extend(trace_headers.items())
    return tuple(out)


def response_headers(incoming: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The upstream's response headers minus hop-by-hop ones and Date/Server (which the serving
    WSGI server writes itself); repeated headers such as ``Set-Cookie`` are kept."""
    pairs = list(incoming)
    dropped = HOP_BY_HOP | _SERVER_WRITTEN | _connection_tokens(pairs)
    return tuple((name, value) for name, value in pairs if name.lower() not in dropped)


def _connection_tokens(pairs: Iterable[tuple[str, str]]) -> frozenset[str]:
    return frozenset(
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


_session: requests.Session | None = None
_session_lock = threading.Lock()


def session() -> requests.Session:
    """The process's upstream session, created on first use."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = new_session()
    return _session


def new_session() -> requests.Session:
    """A session that adds nothing of its own: no default headers, no env proxies or .netrc."""
    import requests
    from requests.adapters import HTTPAdapter

    fresh = requests.Session()
    # trust_env=False: an HTTP(S)_PROXY or .netrc in the function's environment must not reroute
    # or add credentials to forwarded traffic.
    fresh.trust_env = False
    fresh.headers.clear()
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=64, max_retries=0)
    fresh.mount("http://", adapter)
    fresh.mount("https://", adapter)
    return fresh


def send(
    request: OutgoingRequest, *, http: requests.Session, read_timeout_s: float
) -> UpstreamResponse:
    """Send ``request`` upstream and return its answer with the body still streaming.

    Connection failures raise :class:`UpstreamFailed` (502), timeouts the same with status 504.
    """
    import requests

    try:
        response = http.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body or None,
            timeout=(CONNECT_TIMEOUT_S, read_timeout_s),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout as exc:
        raise UpstreamFailed(
            request.upstream, f"did not answer within {read_timeout_s:g} s", timed_out=True
        ) from exc
    except requests.ConnectionError as exc:
        raise UpstreamFailed(request.upstream, "is unreachable (connection failed)") from exc
    except requests.RequestException as exc:
        raise UpstreamFailed(request.upstream, f"failed: {type(exc).__name__}") from exc
    headers = response_headers(response.raw.headers.items())
    return UpstreamResponse(response.status_code, headers, _stream(response))


def _stream(response: requests.Response) -> Iterator[bytes]:
    """The raw (still encoded) body; closing the generator returns the connection to the pool."""
    try:
        yield from response.raw.stream(STREAM_CHUNK, decode_content=False)
    finally:
        response.close()
