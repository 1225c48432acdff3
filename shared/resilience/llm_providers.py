"""LLM providers speaking the OpenAI chat-completions and Anthropic Messages wire formats.

Providers are pure transport: they post one prompt and return the answer text. Failures leave as
exceptions the rest of the package classifies: a non-2xx answer becomes
:class:`~shared.resilience.transient.HttpStatusError` (with the parsed ``Retry-After``), an
unusable 2xx body becomes :class:`MalformedResponse` (transient), and timeouts and connection
errors stay ``requests`` exceptions. Each provider creates its ``requests.Session`` on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import requests

from shared.resilience.llm import ModelSpec
from shared.resilience.sessions import LazySession
from shared.resilience.transient import HttpStatusError, TransientError, parse_retry_after

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicMessagesProvider",
    "HttpProvider",
    "MalformedResponse",
    "OpenAIChatProvider",
    "Provider",
    "default_providers",
    "make_providers",
]

#: The Messages API version this client speaks.
ANTHROPIC_VERSION: Final = "2023-06-01"

_DETAIL_CHARS: Final = 300


class Provider(Protocol):
    """Sends one prompt to one model and returns the answer text."""

    def complete(self, spec: ModelSpec, prompt: str, api_key: str | None) -> str:
        """The model's answer to ``prompt``; raises on any failure (see module docstring)."""
        ...


class MalformedResponse(TransientError):
    """A provider answered 2xx with a body that holds no answer text (treated as transient)."""


class HttpProvider:
    """Shared transport: one lazily created session, status mapping and JSON decoding."""

    api: str = "http"

    def __init__(self, session_factory: Callable[[], requests.Session] = requests.Session) -> None:
        self._sessions = LazySession(session_factory)

    @property
    def session(self) -> requests.Session:
        """The provider's session, created on first use."""
        return self._sessions.get()

    def close(self) -> None:
        """Close the session (if any); the next call creates a new one."""
        self._sessions.close()

    def post(self, spec: ModelSpec, url: str, headers: dict[str, str], body: Any) -> Any:
        """POST ``body`` as JSON; the decoded 2xx body, or the mapped exception."""
        response = self.session.post(
            url, json=body, headers=headers, timeout=spec.timeout, allow_redirects=False
        )
        if not 200 <= response.status_code < 300:
            raise _status_error(spec, self.api, response)
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedResponse(f"{spec.name}: {self.api} answered non-JSON body") from exc


def _status_error(spec: ModelSpec, api: str, response: requests.Response) -> HttpStatusError:
    status = response.status_code
    detail = _error_detail(response)
    message = f"{spec.name}: {api} answered HTTP {status}" + (f": {detail}" if detail else "")
    return HttpStatusError(
        status, message, retry_after=parse_retry_after(response.headers.get("Retry-After"))
    )


def _error_detail(response: requests.Response) -> str:
    # Both APIs put a human message at error.message; fall back to the start of the raw body.
    try:
        error = response.json().get("error")
        detail = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        detail = response.text
    return " ".join(str(detail or "").split())[:_DETAIL_CHARS]


class OpenAIChatProvider(HttpProvider):
    """``POST {base_url}/chat/completions`` with Bearer auth (OpenAI and compatible servers)."""

    api = "openai"

    def complete(self, spec: ModelSpec, prompt: str, api_key: str | None) -> str:
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        body = {
            "model": spec.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": spec.max_tokens,
        }
        data = self.post(spec, f"{spec.base_url}/chat/completions", headers, body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponse(
                f"{spec.name}: openai answer has no choices[0].message"
            ) from exc
        if not isinstance(content, str):
            raise MalformedResponse(f"{spec.name}: openai answer has no text content")
        return content


class AnthropicMessagesProvider(HttpProvider):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version`` headers."""

    api = "anthropic"

    def complete(self, spec: ModelSpec, prompt: str, api_key: str | None) -> str:
        headers = {"Accept": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if api_key is not None:
            headers["x-api-key"] = api_key
        body = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        data = self.post(spec, f"{spec.base_url}/v1/messages", headers, body)
        blocks = data.get("content") if isinstance(data, dict) else None
        if not isinstance(blocks, list):
            raise MalformedResponse(f"{spec.name}: anthropic answer has no content list")
        texts = [
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        if not texts:
            raise MalformedResponse(f"{spec.name}: anthropic answer has no text block")
        return "".join(texts)


def make_providers(
    session_factory: Callable[[], requests.Session] = requests.Session,
) -> Mapping[str, Provider]:
    """One provider per API name (the table's ``provider`` field), sharing ``session_factory``."""
    return {
        "openai": OpenAIChatProvider(session_factory),
        "anthropic": AnthropicMessagesProvider(session_factory),
    }


@functools.cache
def default_providers() -> Mapping[str, Provider]:
    """The process-wide providers, built on first call (their sessions on first request)."""
    return make_providers()
