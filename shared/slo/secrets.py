"""Where the Slack webhook URL comes from: the environment, or Secret Manager on first use."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

from shared.slo.errors import AlertDeliveryError, SloError

SECRET_MANAGER = "https://secretmanager.googleapis.com/v1"


class SecretWebhookUrl:
    """Fetches a Secret Manager secret version over REST once, then serves it from memory.

    ``name`` is ``projects/<p>/secrets/<s>`` (``/versions/latest`` is implied) or a full version
    name. Uses application default credentials; ``session`` overrides the HTTP session in tests.
    """

    def __init__(
        self,
        name: str,
        *,
        session: Any = None,
        timeout_s: float = 10.0,
        endpoint: str = SECRET_MANAGER,
    ) -> None:
        self._name = name if "/versions/" in name else f"{name.rstrip('/')}/versions/latest"
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._timeout = timeout_s
        self._value: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretWebhookUrl({self._name!r})"

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = self._fetch()
            return self._value

    def _fetch(self) -> str:
        session = self._session
        if session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
            session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        response = session.get(f"{self._endpoint}/{self._name}:access", timeout=self._timeout)
        if response.status_code != 200:
            raise AlertDeliveryError(
                f"Secret Manager answered HTTP {response.status_code} for {self._name}",
                status_code=response.status_code,
            )
        data = response.json().get("payload", {}).get("data", "")
        value = base64.b64decode(data).decode("utf-8").strip()
        if not value:
            raise SloError(f"secret {self._name} is empty")
        return value


def webhook_url_source(url: str | None, secret: str | None) -> Callable[[], str] | None:
    """A callable giving the webhook URL (``SLACK_WEBHOOK_URL`` wins), or None if neither is set."""
    if url:
        return lambda: url
    if secret:
        return SecretWebhookUrl(secret)
    return None
