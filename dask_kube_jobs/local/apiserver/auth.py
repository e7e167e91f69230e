"""Bearer-token authentication for the local API server.

Other users of the machine can reach loopback, so the server answers nobody without a token it
issued. Tokens are self-contained and signed with the server's key (HMAC-SHA256), so any number
of identities can be minted without storing them: the administrator's kubeconfig (group
``system:masters``), extra users with groups for RBAC tests (``local kubeconfig --user``), and
ServiceAccount tokens that the kubelet hands to Pods (valid only while the ServiceAccount exists,
as bound tokens are on a real cluster).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

from .rbac import UserInfo

PREFIX = "dkj"
ADMIN = UserInfo(name="kubernetes-admin", groups=("system:masters", "system:authenticated"))
ANONYMOUS = UserInfo(name="system:anonymous", groups=("system:unauthenticated",))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> bytes:
    return secrets.token_bytes(32)


class TokenAuthenticator:
    """Mints and checks tokens of the form ``dkj.<claims>.<signature>``."""

    def __init__(self, key: bytes, *, service_account_exists: Callable[[str, str], bool]) -> None:
        self._key = key
        self._sa_exists = service_account_exists

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def mint(self, claims: dict[str, object]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}.{payload}.{self._sign(payload)}"

    def mint_admin(self) -> str:
        return self.mint({"u": ADMIN.name, "g": ["system:masters"]})

    def mint_user(self, name: str, groups: list[str] | tuple[str, ...] = ()) -> str:
        return self.mint({"u": name, "g": list(groups)})

    def mint_service_account(self, namespace: str, name: str, uid: str = "") -> str:
        return self.mint({"sa": f"{namespace}/{name}", "uid": uid})

    def authenticate(self, token: str) -> UserInfo | None:
        """The identity behind ``token``, or None when it is not one of ours."""
        try:
            prefix, payload, signature = token.split(".")
        except ValueError:
            return None
        if prefix != PREFIX or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if "sa" in claims:
            namespace, _, name = str(claims["sa"]).partition("/")
            if not self._sa_exists(namespace, name):
                return None
            return UserInfo(
                name=f"system:serviceaccount:{namespace}:{name}",
                groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                        "system:authenticated"),
            )
        groups = tuple(dict.fromkeys([*claims.get("g", []), "system:authenticated"]))
        return UserInfo(name=str(claims["u"]), groups=groups)
