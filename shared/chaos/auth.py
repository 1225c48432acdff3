"""Who may run chaos: a Firebase ID token whose custom claim ``role`` is ``owner`` or ``secops``,
or Cloud IAM in front of the function, or nobody checks (local stack).

``CHAOS_AUTH=iam`` trusts the platform: use it only when the function is deployed without public
invokers (``--no-allow-unauthenticated``), so every request that reaches it passed IAM.
``firebase-admin`` is imported and its app initialised on first use; with
``FIREBASE_AUTH_EMULATOR_HOST`` set it verifies the emulator's tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from shared.chaos.config import AuthMode
from shared.chaos.errors import AuthUnavailable, Forbidden, Unauthenticated
from shared.settings import Env

ALLOWED_ROLES: Final = ("owner", "secops")
ROLE_CLAIM: Final = "role"
FIREBASE_APP_NAME: Final = "shared-chaos"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller allowed in. ``uid`` is empty when no check applies (``iam``/``none``)."""

    uid: str
    role: str
    via: AuthMode

    @property
    def label(self) -> str:
        """A short "who" for journals: ``uid (role)`` or the auth mode."""
        return f"{self.uid} ({self.role})" if self.uid else self.via


class TokenVerifier(Protocol):
    """Verifies an ID token and returns its claims; raises :class:`Unauthenticated` if invalid."""

    def __call__(self, token: str) -> Mapping[str, Any]: ...


class FirebaseVerifier:
    """Verifies Firebase ID tokens with ``firebase-admin``; its app is created on first use."""

    def __init__(self, project_id: str | None = None) -> None:
        self._project_id = project_id
        self._app: Any = None
        self._lock = threading.Lock()

    def __call__(self, token: str) -> Mapping[str, Any]:
        from firebase_admin import auth, exceptions
        from google.auth import exceptions as google_auth_exceptions

        try:
            claims: Mapping[str, Any] = auth.verify_id_token(token, app=self._firebase_app())
        except auth.CertificateFetchError as exc:
            raise AuthUnavailable("cannot fetch the token signing keys; try again later") from exc
        except google_auth_exceptions.GoogleAuthError as exc:
            # No Application Default Credentials (or they cannot be refreshed): nothing can be
            # verified, so nobody is let in (fail closed), and it is ours to fix, not the caller's.
            raise AuthUnavailable(
                f"cannot verify ID tokens: {type(exc).__name__} (credentials unavailable)"
            ) from exc
        except (ValueError, exceptions.FirebaseError) as exc:
            # InvalidIdTokenError, ExpiredIdTokenError, RevokedIdTokenError are FirebaseErrors;
            # malformed input raises ValueError.
            raise Unauthenticated(f"invalid ID token: {type(exc).__name__}") from exc
        return claims

    def _firebase_app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = _initialize_app(self._project_id)
        return self._app


def _initialize_app(project_id: str | None) -> Any:
    import firebase_admin

    try:
        return firebase_admin.get_app(FIREBASE_APP_NAME)
    except ValueError:
        pass
    project = project_id or Env().project()
    options = {"projectId": project} if project else None
    # A named app so the project's own default app (if another module makes one) is left alone.
    return firebase_admin.initialize_app(options=options, name=FIREBASE_APP_NAME)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# The principal of each mode that checks nothing itself, made once: it is the same every request.
_UNCHECKED: Final[dict[str, Principal]] = {
    "iam": Principal("", "", "iam"),
    "none": Principal("", "", "none"),
}


def authorize(mode: AuthMode, authorization: str | None, verifier: TokenVerifier) -> Principal:
    """Let the caller in or raise :class:`Unauthenticated` (401) / :class:`Forbidden` (403)."""
    if mode != "firebase":
        return _UNCHECKED.get(mode) or Principal("", "", mode)
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated(
            "missing credentials: send Authorization: Bearer <Firebase ID token> "
            f"of a user whose custom claim {ROLE_CLAIM!r} is one of {', '.join(ALLOWED_ROLES)}"
        )
    claims = verifier(token)
    role = claims.get(ROLE_CLAIM)
    uid = str(claims.get("uid") or claims.get("sub") or "")
    if role not in ALLOWED_ROLES:
        raise Forbidden(
            f"role {role!r} may not run chaos; allowed roles: {', '.join(ALLOWED_ROLES)}",
            ALLOWED_ROLES,
        )
    return Principal(uid, str(role), mode)
