"""Real Firebase ID tokens from the Auth emulator (firebase-tools), verified by firebase-admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from flask.testing import FlaskClient

from shared.chaos.auth import FirebaseVerifier
from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.runtime import use_runtime
from shared.resilience.clock import FakeClock
from tests.chaos import servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokens(auth_emulator: servers.AuthEmulator) -> dict[str, str]:
    """One ID token per kind of user (emails unique per module run)."""
    import uuid

    tag = uuid.uuid4().hex[:8]
    return {
        role or "none": auth_emulator.id_token(f"{role or 'none'}-{tag}@example.test", role)
        for role in ("owner", "secops", "viewer", None)
    }


@pytest.fixture
def firebase_mode(
    auth_emulator: servers.AuthEmulator, chaos_env: pytest.MonkeyPatch
) -> Iterator[None]:
    chaos_env.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.host)
    chaos_env.setenv("GOOGLE_CLOUD_PROJECT", servers.AUTH_PROJECT)
    chaos_env.setenv("CHAOS_AUTH", "firebase")
    verifier = FirebaseVerifier(servers.AUTH_PROJECT)
    with use_runtime(clock=FakeClock(), store=MemoryExperimentStore(), verifier=verifier):
        yield


@pytest.mark.usefixtures("firebase_mode")
@pytest.mark.parametrize(
    ("authorization", "status", "error"),
    [
        (None, 401, "unauthenticated"),
        ("Bearer not-a-jwt", 401, "unauthenticated"),
        ("Basic b3duZXI6cHc=", 401, "unauthenticated"),
        ("token:viewer", 403, "forbidden"),
        ("token:none", 403, "forbidden"),
    ],
)
def test_refused(
    delay_client: FlaskClient,
    proxy_client: FlaskClient,
    tokens: dict[str, str],
    authorization: str | None,
    status: int,
    error: str,
) -> None:
    if authorization is not None and authorization.startswith("token:"):
        authorization = f"Bearer {tokens[authorization.removeprefix('token:')]}"
    headers = {} if authorization is None else {"Authorization": authorization}
    for client, path in (
        (delay_client, "/?p=0&d=0"),
        (proxy_client, "/?mode=ok"),
        (proxy_client, "/_experiments"),
    ):
        r = client.get(path, headers=headers)
        assert r.status_code == status
        assert r.get_json()["error"] == error


@pytest.mark.usefixtures("firebase_mode")
def test_tampered_token_is_refused(delay_client: FlaskClient, tokens: dict[str, str]) -> None:
    header, payload, signature = tokens["viewer"].split(".")
    owner_payload = tokens["owner"].split(".")[1]
    assert payload != owner_payload
    forged = f"{header}.{owner_payload}x.{signature}"
    r = delay_client.get("/?p=0&d=0", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


@pytest.mark.usefixtures("firebase_mode")
@pytest.mark.parametrize("role", ["owner", "secops"])
def test_owner_and_secops_are_allowed(
    delay_client: FlaskClient, proxy_client: FlaskClient, tokens: dict[str, str], role: str
) -> None:
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    assert delay_client.get("/?p=0&d=0", headers=headers).status_code == 200
    assert proxy_client.get("/?mode=error", headers=headers).status_code == 502
    r = proxy_client.get("/_experiments", headers=headers)
    assert r.status_code == 200


def test_firebase_auth_over_http(
    auth_emulator: servers.AuthEmulator, tokens: dict[str, str]
) -> None:
    env = {
        "CHAOS_AUTH": "firebase",  # the default when deployed (tests/chaos/test_config.py)
        "CHAOS_ENABLED": "true",
        "FIREBASE_AUTH_EMULATOR_HOST": auth_emulator.host,
        "GOOGLE_CLOUD_PROJECT": servers.AUTH_PROJECT,
    }
    service = servers.start_function("chaos_delay", env)
    try:
        base = f"http://{service.host}/chaos_delay?p=0&d=0"
        assert requests.get(base, timeout=10).status_code == 401
        viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
        assert requests.get(base, headers=viewer, timeout=10).status_code == 403
        owner = {"Authorization": f"Bearer {tokens['owner']}"}
        assert requests.get(base, headers=owner, timeout=10).status_code == 200
    finally:
        service.stop()
    # Deployed (K_SERVICE set), the emulator variable is a configuration error: nobody gets in.
    service = servers.start_function("chaos_delay", {**env, "K_SERVICE": "chaos_delay"})
    try:
        r = requests.get(base.replace(base.split("/")[2], service.host), headers=owner, timeout=10)
        assert (r.status_code, r.json()["variable"]) == (500, "FIREBASE_AUTH_EMULATOR_HOST")
    finally:
        service.stop()
