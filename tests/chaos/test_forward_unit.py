"""Forwarding's pure parts: the upstream URL and header filtering both ways."""

from __future__ import annotations

import pytest

from shared.chaos.config import Upstream
from shared.chaos.errors import InvalidParameter
from shared.chaos.forward import forward_headers, response_headers, upstream_url

LLM = Upstream("llm", "http://127.0.0.1:8084")
PREFIXED = Upstream("api", "https://api.example.test/v2")


def test_url_keeps_path_encoding_and_query() -> None:
    assert upstream_url(LLM, "/v1/chat%2Fx", "a=1&b=%20") == (
        "http://127.0.0.1:8084/v1/chat%2Fx?a=1&b=%20"
    )
    assert upstream_url(PREFIXED, "/models", "") == "https://api.example.test/v2/models"
    assert upstream_url(LLM, "", "") == "http://127.0.0.1:8084"
    assert upstream_url(LLM, "/", "") == "http://127.0.0.1:8084/"


@pytest.mark.parametrize("path", ["/../admin", "/a/./b", "/a/%2e%2e/b", "/%2E%2E"])
def test_dot_segments_are_refused(path: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        upstream_url(PREFIXED, path, "")
    assert info.value.parameter == "path"


@pytest.mark.parametrize(
    "path",
    ["/..%2F..%2Fadmin", "/..%2fadmin", "/a%2F..%2F..%2Fadmin", "/%252e%252e/admin",
     "/%252E%252E%252Fadmin", "/..%5Cadmin", "/..;/admin", "/%2e%2e%3b/admin"],
)  # fmt: skip
def test_encoded_separators_and_double_encoding_cannot_climb(path: str) -> None:
    # Defect 6 of issue 12: "..%2F..%2Fadmin" was forwarded as /api/..%2F..%2Fadmin.
    with pytest.raises(InvalidParameter) as info:
        upstream_url(PREFIXED, path, "")
    assert info.value.parameter == "path"


@pytest.mark.parametrize("path", ["/a..b/c", "/...", "/v1/%2e%2efile", "/x%252Fy", "/.well-known"])
def test_dots_that_are_not_segments_pass(path: str) -> None:
    assert upstream_url(PREFIXED, path, "") == PREFIXED.base_url + path


@pytest.mark.parametrize("path", ["//evil.test/x", "/@evil.test", "evil.test"])
def test_the_host_always_stays_the_configured_one(path: str) -> None:
    assert upstream_url(LLM, path, "").startswith("http://127.0.0.1:8084/")


def test_request_headers_are_filtered_and_annotated() -> None:
    incoming = [
        ("Host", "chaos.example"),
        ("Content-Length", "3"),
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("X-Secret-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Proxy-Authorization", "Basic x"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Authorization", "Bearer app-key"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
        ("Accept", "application/json"),
    ]
    trace = {"traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-00"}
    out = forward_headers(
        incoming, client_addr="127.0.0.9", original_host="chaos.example", scheme="https",
        trace_headers=trace,
    )  # fmt: skip
    assert out == (
        ("Authorization", "Bearer app-key"),
        ("Accept", "application/json"),
        ("X-Forwarded-For", "10.0.0.1, 127.0.0.9"),
        ("X-Forwarded-Host", "chaos.example"),
        ("X-Forwarded-Proto", "https"),
        ("traceparent", trace["traceparent"]),
    )


def test_existing_forwarded_host_and_proto_are_kept() -> None:
    out = dict(
        forward_headers(
            [("X-Forwarded-Host", "front"), ("X-Forwarded-Proto", "https")],
            client_addr=None,
            original_host="inner",
            scheme="http",
            trace_headers={},
        )
    )
    assert out == {"X-Forwarded-Host": "front", "X-Forwarded-Proto": "https"}


def test_response_headers_drop_hop_by_hop_and_server_written_ones() -> None:
    incoming = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Connection", "X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Date", "Mon"),
        ("Server", "upstream/1"),
        ("Content-Length", "10"),
    ]
    assert response_headers(incoming) == (
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Length", "10"),
    )


@pytest.mark.parametrize(
    ("raw_uri", "path"),
    [("/chaos_proxy/demo/http://x/_experiments", "/chaos_proxy/demo/http://x/_experiments"),
     ("/chaos_proxy/nope/http://x/chaos_proxy/demo/secret",
      "/chaos_proxy/nope/http://x/chaos_proxy/demo/secret"),
     ("/a%2Fb?x=http://y/z", "/a%2Fb"),
     ("http://host:8082/chaos_proxy/demo/a?q=1", "/chaos_proxy/demo/a"),
     ("HTTPS://host/x", "/x"), ("http://host", "/"), ("*", "/")],
)  # fmt: skip
def test_only_a_request_target_that_starts_with_a_scheme_is_absolute_form(
    raw_uri: str, path: str
) -> None:
    # Defect 5 of issue 12: "://" anywhere in the path was taken as an absolute-form target.
    from shared.chaos.proxy_handler import raw_path, route_of

    assert raw_path({"RAW_URI": raw_uri}) == path
    if raw_uri.startswith("/chaos_proxy/demo/http"):
        route = route_of(path)
        assert (route.kind, route.upstream, route.rest) == (
            "forward",
            "demo",
            "/http://x/_experiments",
        )
    if raw_uri.startswith("/chaos_proxy/nope"):
        assert route_of(path).upstream == "nope"
