"""Slack messages for rollout transitions, in the monitor's Block Kit shape.

One message per alerted transition (advance, complete, rollback, recovered), with who or what
decided it, the reasons and the numbers; a recovery reads "resolved".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.slo.alerting import SlackMessage

_TITLES: Final = {
    "advance": ":arrow_forward: Rollout advanced",
    "complete": ":white_check_mark: Rollout complete",
    "rollback": ":rotating_light: Rollout rolled back",
    "recovered": ":white_check_mark: Resolved: rollout recovered",
}


def transition_message(
    name: str, transition: Mapping[str, Any], link: str | None = None
) -> SlackMessage:
    """The Block Kit payload for one transition of rollout ``name`` as stored."""
    verdict = str(transition.get("verdict"))
    title = f"{_TITLES.get(verdict, 'Rollout ' + verdict)}: {name}"
    candidate = transition.get("candidate") or "-"
    fields = [
        ("Rollout", name),
        ("Versions", f"stable {transition.get('stable')} / candidate {candidate}"),
        ("Percent", f"{transition.get('from_percent')}% → {transition.get('percent_after')}%"),
        ("Decided by", str(transition.get("by"))),
    ]
    evidence = transition.get("evidence") or {}
    numbers = [
        str(evidence[m]["reason"])
        for m in ("latency", "errors")
        if isinstance(evidence.get(m), Mapping) and evidence[m].get("reason")
    ]
    breakers = evidence.get("breakers_open_s") or {}
    numbers += [f"breaker {b} not closed for {s} s" for b, s in sorted(breakers.items())]
    reasons = "; ".join(str(r) for r in transition.get("reasons") or [])
    text = f"{title}: {reasons}"
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why*\n{reasons}"[:3000]}},
    ]
    if numbers:
        evidence_text = "\n".join(f"• {n}" for n in numbers)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": evidence_text[:3000]}]}
        )
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": link}
                ],
            }
        )
    return {"text": text[:3000], "blocks": blocks}
