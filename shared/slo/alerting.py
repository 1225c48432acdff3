"""Slack alerts: Block Kit messages for violations and recoveries, posted to an incoming webhook.

The webhook URL is a secret: it is never logged and is scrubbed from every error message (the
exceptions raised here drop the ``requests`` exception that would carry it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.retries import retry
from shared.resilience.transient import parse_retry_after
from shared.slo.errors import AlertDeliveryError, AlertUnreachable
from shared.slo.records import AlertKind, AlertRecord

#: A Block Kit message, as JSON: ``text`` (the notification's fallback) and ``blocks``.
SlackMessage = dict[str, object]

_EMOJI = {"page": ":rotating_light:", "ticket": ":warning:", "warning": ":large_yellow_circle:"}


def message_for(kind: AlertKind, data: AlertRecord, link: str | None = None) -> SlackMessage:
    """The Block Kit payload for an outbox record of ``kind``."""
    if kind == "violation":
        return violation_message(data, link)
    if kind == "no_data":
        return no_data_message(data, link)
    return recovery_message(data, link)


def violation_message(data: AlertRecord, link: str | None = None) -> SlackMessage:
    """The Block Kit payload for one violation record (as stored by the recorder)."""
    severity = str(data.get("severity") or "warning")
    title = f"{_EMOJI.get(severity, ':warning:')} SLO violation: {data['slo']} ({severity})"
    burn = data.get("burn_rate")
    fields = [
        ("SLO", f"{data['slo']} ({data.get('sli', '')})"),
        ("Severity", severity),
        ("Observed", str(data.get("observed_text", data.get("observed")))),
        ("Objective", str(data.get("objective"))),
        ("Window", _window_text(data)),
        ("Burn rate", "n/a" if burn is None else f"{burn:.2f}x budget"),
    ]
    rules = [f"{a['rule']}: {a['condition']}" for a in data.get("alerts") or []]
    context = f"Detected {_when(data.get('detected_at'))}"
    if data.get("classification") == "ongoing":
        context += " · ongoing violation"
    if rules:
        context += " · burn-rate alerts: " + "; ".join(rules)
    text = (
        f"SLO {data['slo']} violated ({severity}): {data.get('observed_text')} "
        f"vs objective {data.get('objective')} over {data.get('window')}"
    )
    return _message(title, fields, context, text, link)


def no_data_message(data: AlertRecord, link: str | None = None) -> SlackMessage:
    """The payload for an SLO whose source has returned nothing for several windows in a row.

    A broken filter, a renamed metric or a silent service all look like this: the SLO is not
    being judged at all, which no violation alert would ever say.
    """
    windows = data.get("no_data_windows", 0)
    title = f":grey_question: SLO without data: {data['slo']}"
    fields = [
        ("SLO", f"{data['slo']} ({data.get('sli', '')})"),
        ("Objective", str(data.get("objective"))),
        ("No data since", _when(data.get("no_data_since"))),
        ("Windows in a row", str(windows)),
    ]
    context = (
        f"Detected {_when(data.get('detected_at'))} · check the SLI's filter and that the "
        "service is receiving traffic"
    )
    text = f"SLO {data['slo']}: no data for {windows} windows in a row ({data.get('window')} each)"
    return _message(title, fields, context, text, link)


def recovery_message(data: AlertRecord, link: str | None = None) -> SlackMessage:
    """The Block Kit payload for a recovery record."""
    title = f":white_check_mark: SLO recovered: {data['slo']}"
    fields = [
        ("SLO", f"{data['slo']} ({data.get('sli', '')})"),
        ("Observed", str(data.get("observed_text", data.get("observed")))),
        ("Objective", str(data.get("objective"))),
        ("Window", _window_text(data)),
    ]
    context = f"Recovered {_when(data.get('detected_at'))}"
    if data.get("violation_since"):
        context += f" · violating since {_when(data.get('violation_since'))}"
    text = f"SLO {data['slo']} recovered: {data.get('observed_text')} vs {data.get('objective')}"
    return _message(title, fields, context, text, link)


def _message(
    title: str, fields: list[tuple[str, str]], context: str, text: str, link: str | None
) -> SlackMessage:
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": link}
                ],
            }
        )
    return {"text": text, "blocks": blocks}


def _window_text(data: AlertRecord) -> str:
    start, end = data.get("window_start"), data.get("window_end")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC ({data.get('window')})"
    return str(data.get("window"))


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if isinstance(value, datetime) else str(value)


class _ScrubSecrets(logging.Filter):
    """Rewrites log records that would show a secret (urllib3 logs request paths at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            message = record.getMessage()
            scrubbed = message
            for url in self.urls:
                scrubbed = _scrub(scrubbed, url)
            if scrubbed != message:
                record.msg, record.args = scrubbed, ()
        return True


_SCRUB = _ScrubSecrets()
_SCRUBBED_LOGGERS = ("urllib3.connectionpool", "requests")


def _guard_logs(url: str) -> None:
    """Make sure the HTTP stack's own logs never show ``url``."""
    if url in _SCRUB.urls:
        return
    _SCRUB.urls.add(url)
    for name in _SCRUBBED_LOGGERS:
        log = logging.getLogger(name)
        if _SCRUB not in log.filters:
            log.addFilter(_SCRUB)


class SlackWebhook:
    """Posts messages to a Slack incoming webhook, retrying 429/5xx/timeouts with backoff.

    ``url`` is a callable so the secret is fetched on first use (Secret Manager) and never held
    by configuration objects. ``timeout_s`` bounds each POST; ``attempts`` and ``deadline_s``
    bound one message's retries (a ``Retry-After`` past the deadline ends them early).
    """

    def __init__(
        self,
        url: Callable[[], str],
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        deadline_s: float = 20.0,
        clock: Clock = SYSTEM_CLOCK,
        session: Any = None,
    ) -> None:
        self._url = url
        self._timeout = timeout_s
        self._attempts = attempts
        self._deadline = deadline_s
        self._clock = clock
        self._session = session

    def __repr__(self) -> str:
        return f"SlackWebhook(url=<redacted>, timeout_s={self._timeout})"

    def send(self, payload: SlackMessage) -> None:
        """Deliver ``payload``; raises :class:`AlertDeliveryError` once retries are spent."""
        retry(
            lambda: self._post(payload),
            self._attempts,
            base=0.5,
            cap=5.0,
            deadline=self._deadline,
            name="slo.slack",
            clock=self._clock,
        )

    def _post(self, payload: SlackMessage) -> None:
        import requests

        url = self._url()
        _guard_logs(url)
        session = self._session or requests
        try:
            response = session.post(url, json=payload, timeout=self._timeout)
        except requests.RequestException as exc:
            # ``from None``: the requests exception's text and chain carry the webhook URL.
            raise AlertUnreachable(
                f"Slack webhook unreachable: {type(exc).__name__}: {_scrub(str(exc), url)}"
            ) from None
        if 200 <= response.status_code < 300:
            return
        body = _scrub(response.text[:200], url)
        raise AlertDeliveryError(
            f"Slack webhook answered HTTP {response.status_code}: {body}",
            status_code=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )


def _scrub(text: str, url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    # The whole URL, its path, and any long path segment (Slack's token) on its own.
    secrets = {url, parts.path, parts.path.lstrip("/")}
    secrets.update(segment for segment in parts.path.split("/") if len(segment) >= 8)
    for secret in sorted(secrets - {"", "/"}, key=len, reverse=True):
        text = text.replace(secret, "<webhook>")
    return text
