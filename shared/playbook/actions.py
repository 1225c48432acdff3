"""Actions for the shipped playbooks that a single HTTP call cannot express."""

from __future__ import annotations

from typing import Any

from shared.playbook.errors import ActivityFailed

__all__ = ["stop_chaos_experiments"]


def stop_chaos_experiments(
    *, proxy_url: str, upstream: str, timeout_s: float = 5.0
) -> dict[str, Any]:
    """Stop every active ``chaos_proxy`` experiment on ``upstream``; idempotent.

    ``proxy_url`` is the function's base (``http://127.0.0.1:8082/chaos_proxy``). Used as the
    rollback of an outage: it needs no experiment id, so it works after an interruption too.
    """
    import requests

    base = proxy_url.rstrip("/")
    stopped: list[str] = []
    with requests.Session() as session:
        session.trust_env = False
        try:
            listing = session.get(f"{base}/_experiments", params={"limit": 500}, timeout=timeout_s)
            listing.raise_for_status()
            for experiment in listing.json().get("experiments", []):
                if experiment.get("upstream") != upstream or experiment.get("status") != "active":
                    continue
                answer = session.delete(
                    f"{base}/_experiments/{experiment['id']}", timeout=timeout_s
                )
                answer.raise_for_status()
                stopped.append(str(experiment["id"]))
        except (requests.RequestException, ValueError, KeyError, AttributeError) as exc:
            raise ActivityFailed(f"could not stop the experiments on {upstream!r}: {exc}") from exc
    return {"upstream": upstream, "stopped": stopped}
