"""Bearer-token authentication for the local API server.

Other users of the machine can reach loopback, so the server answers nobody without a token it
issued. Tokens are self-contained and signed with the server's key (HMAC-SHA256), so any number
of identities can be minted without storing them: the administrator's kubeconfig (group
``system:masters``), extra users with groups for RBAC tests (``local kubeconfig --user``), and
ServiceAccount tokens.

ServiceAccount tokens from the TokenRequest API (what the kubelet mounts into Pods) are bound
as on a real cluster: they expire (``exp``), they name the account's uid, so a token of an
account deleted and created again under the same name is refused, and when bound to a Pod they
hold only while that Pod (same uid) exists. Tokens minted offline with the signing key
(``local kubeconfig --service-account``: whoever holds the key is the administrator) name no uid
and do not expire; they hold while an account of that name exists, as a legacy Secret-based
token holds while its Secret does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
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


#: (resource, namespace, name) -> the object's uid, or None when there is no such object
UidLookup = Callable[[str, str, str], "str | None"]


class TokenAuthenticator:
    """Mints and checks tokens of the form ``dkj.<claims>.<signature>``."""

    def __init__(self, key: bytes, *, uid_of: UidLookup,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._uid_of = uid_of
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def mint(self, claims: dict[str, object]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}.{payload}.{self._sign(payload)}"

    def mint_admin(self) -> str:
        return self.mint({"u": ADMIN.name, "g": ["system:masters"]})

    def mint_user(self, name: str, groups: list[str] | tuple[str, ...] = ()) -> str:
        return self.mint({"u": name, "g": list(groups)})

    def mint_service_account(self, namespace: str, name: str, uid: str = "", *,
                             expires: int | None = None,
                             pod: tuple[str, str] | None = None) -> str:
        """A token of ServiceAccount ``namespace/name``; with its ``uid``, valid only for that
        account; with ``expires`` (Unix seconds), only until then; with ``pod`` (name, uid),
        only while that Pod exists."""
        claims: dict[str, object] = {"sa": f"{namespace}/{name}", "uid": uid}
        if expires is not None:
            claims["exp"] = int(expires)
        if pod is not None:
            claims["pod"] = list(pod)
        return self.mint(claims)

    def authenticate(self, token: str) -> UserInfo | None:
        """The identity behind ``token``, or None when it is not one of ours (or no longer
        valid)."""
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
        if "exp" in claims and self._clock() >= float(claims["exp"]):
            return None
        if "sa" in claims:
            return self._service_account(claims)
        groups = tuple(dict.fromkeys([*claims.get("g", []), "system:authenticated"]))
        return UserInfo(name=str(claims["u"]), groups=groups)

    def _service_account(self, claims: dict[str, object]) -> UserInfo | None:
        namespace, _, name = str(claims["sa"]).partition("/")
        uid = self._uid_of("serviceaccounts", namespace, name)
        if uid is None or claims.get("uid") and claims["uid"] != uid:
            return None
        pod = claims.get("pod")
        if isinstance(pod, list) and (len(pod) != 2 or
                                      self._uid_of("pods", namespace, str(pod[0])) != pod[1]):
            return None
        return UserInfo(
            name=f"system:serviceaccount:{namespace}:{name}",
            groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                    "system:authenticated"),
        )
