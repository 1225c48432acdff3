"""Role checks with a stub verifier (the emulator-backed tests are in test_auth_emulator.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

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


@pytest.fixture
def no_credentials(chaos_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No Application Default Credentials anywhere: no key file, no gcloud login, no metadata
    server (``NO_GCE_CHECK``), no emulator; a fresh Firebase app before and after."""
    import firebase_admin

    from shared.chaos.auth import FIREBASE_APP_NAME

    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "FIREBASE_AUTH_EMULATOR_HOST",
        "CLOUDSDK_CONFIG",
    ):
        chaos_env.delenv(name, raising=False)
    chaos_env.setenv("HOME", str(tmp_path))
    chaos_env.setenv("NO_GCE_CHECK", "true")
    chaos_env.setenv("GOOGLE_CLOUD_PROJECT", "demo-no-adc")
    chaos_env.setenv("CHAOS_AUTH", "firebase")

    def forget_app() -> None:
        with contextlib.suppress(ValueError):  # none yet
            firebase_admin.delete_app(firebase_admin.get_app(FIREBASE_APP_NAME))

    forget_app()
    yield chaos_env
    forget_app()


@pytest.mark.usefixtures("no_credentials")
def test_no_application_default_credentials_is_503_auth_unavailable(
    delay_client: FlaskClient,
) -> None:
    # Defect 7 of issue 12: DefaultCredentialsError escaped as a 500 on every request with a token.
    from shared.chaos.auth import FirebaseVerifier
    from shared.chaos.runtime import use_runtime

    with use_runtime(verifier=FirebaseVerifier()):
        r = delay_client.get("/?p=0&d=0", headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 503
    assert r.get_json()["error"] == "auth_unavailable"
    assert "DefaultCredentialsError" in r.get_json()["message"]


def _unsigned_owner_token(project: str) -> str:
    import base64
    import json
    import time

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}", "aud": project, "sub": "mallory",
        "uid": "mallory", "role": "owner", "iat": now - 10, "exp": now + 3600, "auth_time": now,
    }  # fmt: skip
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_an_emulator_variable_when_deployed_refuses_everything(
    delay_client: FlaskClient, no_credentials: pytest.MonkeyPatch
) -> None:
    # Defect 8 of issue 12: with K_SERVICE set, FIREBASE_AUTH_EMULATOR_HOST still made
    # firebase-admin accept an unsigned alg=none token claiming role owner (200).
    from shared.chaos.auth import FirebaseVerifier
    from shared.chaos.runtime import use_runtime

    no_credentials.setenv("K_SERVICE", "chaos_delay")
    no_credentials.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    token = _unsigned_owner_token("demo-no-adc")
    with use_runtime(verifier=FirebaseVerifier()):
        r = delay_client.get("/?p=0&d=0", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 500
    body = r.get_json()
    assert (body["error"], body["variable"]) == (
        "chaos_misconfigured",
        "FIREBASE_AUTH_EMULATOR_HOST",
    )
    assert body["allowed"] == "unset when deployed (K_SERVICE is set)"
