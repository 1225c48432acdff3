"""Run one provider and return its output (a JSON-friendly value).

Providers are chosen by the ``type`` of the validated provider: ``http``, ``python``, ``load``,
``sleep``. A provider that cannot run or whose result is a failure raises; the runner journals
the exception text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shared.playbook.errors import ActivityFailed, PlaybookError
from shared.playbook.load import run_load
from shared.playbook.loader import resolve_function
from shared.playbook.model import HttpProvider, LoadProvider, Provider, PythonProvider

Sleep = Callable[[float], None]
"""Waits a number of seconds; the runner's is interruptible."""

_BODY_CHARS = 4000


def run_provider(provider: Provider, *, sleep: Sleep, stop: threading.Event) -> Any:
    """Run ``provider``; its output, or an exception describing the failure."""
    if isinstance(provider, HttpProvider):
        return run_http(provider)
    if isinstance(provider, PythonProvider):
        return run_python(provider)
    if isinstance(provider, LoadProvider):
        return run_load(provider, stop=stop).as_output()
    sleep(provider.seconds)
    return {"slept_s": provider.seconds}


def run_http(spec: HttpProvider) -> dict[str, Any]:
    """One request; output ``{status, headers, body, elapsed_ms}`` (body JSON-decoded if JSON).

    Raises :class:`ActivityFailed` when the status is not expected (any 2xx by default).
    """
    import requests

    started = time.monotonic()
    with requests.Session() as session:
        session.trust_env = False
        try:
            response = session.request(
                spec.method,
                spec.url,
                params=dict(spec.query),
                headers=dict(spec.headers),
                json=spec.json,
                timeout=spec.timeout_s,
            )
        except requests.RequestException as exc:
            raise ActivityFailed(f"{spec.method} {spec.url} failed: {exc}") from exc
    elapsed_ms = (time.monotonic() - started) * 1000.0
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text[:_BODY_CHARS]
    output = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": body,
        "elapsed_ms": round(elapsed_ms, 3),
    }
    expected = spec.expected_status
    if (expected and response.status_code not in expected) or (
        not expected and not 200 <= response.status_code < 300
    ):
        wanted = ", ".join(map(str, expected)) if expected else "2xx"
        raise ActivityFailed(
            f"{spec.method} {spec.url} answered {response.status_code}, expected {wanted}: "
            f"{response.text[:300]}"
        )
    return output


def run_python(spec: PythonProvider) -> Any:
    """Call the function with the keyword arguments (resolved again: validation already passed)."""
    target = resolve_function(spec.func)
    if isinstance(target, str):
        raise PlaybookError(target)
    return target(**spec.arguments)
