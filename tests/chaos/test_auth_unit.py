"""Role checks with a stub verifier (the emulator-backed tests are in test_auth_emulator.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.chaos.auth import authorize, bearer_token
from shared.chaos.errors import Forbidden, Unauthenticated


def verifier(token: str) -> Mapping[str, Any]:
    if token == "bad":
        raise Unauthenticated("invalid ID token: InvalidIdTokenError")
    return {"uid": f"u-{token}", "role": token}


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


@pytest.mark.parametrize("role", ["owner", "secops"])
def test_owner_and_secops_are_allowed(role: str) -> None:
    principal = authorize("firebase", f"Bearer {role}", verifier)
    assert (principal.uid, principal.role, principal.label) == (
        f"u-{role}",
        role,
        f"u-{role} ({role})",
    )


def test_refusals() -> None:
    with pytest.raises(Unauthenticated, match="missing credentials"):
        authorize("firebase", None, verifier)
    with pytest.raises(Unauthenticated):
        authorize("firebase", "Bearer bad", verifier)
    with pytest.raises(Forbidden, match="role 'viewer' may not run chaos") as info:
        authorize("firebase", "Bearer viewer", verifier)
    assert info.value.details() == {"allowed_roles": ["owner", "secops"]}


@pytest.mark.parametrize("mode", ["iam", "none"])
def test_iam_and_none_do_not_check_tokens(mode: str) -> None:
    principal = authorize(mode, None, verifier)  # type: ignore[arg-type]
    assert principal.label == mode
