"""Who serves a Cloud Run service: its revisions' traffic and tags, as ``gcloud`` shows them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from scripts.deploy.errors import DeployError

#: Traffic tags on a blue/green function's revisions.
STABLE: Final = "stable"
CANDIDATE: Final = "candidate"
PREVIOUS: Final = "previous"


@dataclass(frozen=True, slots=True)
class Traffic:
    """Who serves a Cloud Run service: percent per revision, tags, the latest ready revision."""

    service: str
    latest: str
    percent: tuple[tuple[str, int], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    def tagged(self, tag: str) -> str | None:
        return dict(self.tags).get(tag)

    def share(self, revision: str) -> int:
        return dict(self.percent).get(revision, 0)

    def serving(self) -> str:
        """The revision with the most traffic (the latest one when none has any)."""
        if not self.percent:
            return self.latest
        return max(self.percent, key=lambda item: item[1])[0]

    @classmethod
    def parse(cls, service: str, text: str) -> Traffic:
        """From ``gcloud run services describe --format=json`` (``status.traffic``)."""
        try:
            status = json.loads(text)["status"]
            latest = str(status["latestReadyRevisionName"])
            percent: dict[str, int] = {}
            tags: dict[str, str] = {}
            for target in status.get("traffic", []):
                revision = str(target.get("revisionName") or latest)
                if target.get("percent"):
                    percent[revision] = percent.get(revision, 0) + int(target["percent"])
                if target.get("tag"):
                    tags[str(target["tag"])] = revision
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeployError(f"cannot read the traffic of service {service}: {exc!r}") from exc
        return cls(service, latest, tuple(percent.items()), tuple(tags.items()))


def dry_traffic(service: str, *, rollout: bool) -> Traffic:
    """What a dry run assumes: ``stable`` serves all; with ``rollout``, a ``candidate`` too."""
    stable, new = f"{service}-STABLE", f"{service}-NEW"
    if not rollout:
        return Traffic(service, stable, ((stable, 100),), ((STABLE, stable),))
    return Traffic(service, new, ((stable, 100),), ((STABLE, stable), (CANDIDATE, new)))
