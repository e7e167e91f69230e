"""``serviceaccounts/<name>/token``: the TokenRequest API, minting bound ServiceAccount tokens.

As kube-apiserver does: ``expirationSeconds`` defaults to an hour and must lie between ten
minutes and 2^32 seconds; a ``boundObjectRef`` to a Pod must name an existing Pod with that uid
(the token then holds only while that Pod does); the token names the account's uid and expires
when the answer's ``expirationTimestamp`` says (``auth.TokenAuthenticator`` checks all three).
The kubelet requests one for each Pod's ``kube-api-access`` files and projected
``serviceAccountToken`` volumes, and requests a new one before 80 % of its life has passed.

One exception, kube-apiserver's default (``--service-account-extend-token-expiration=true``):
a Pod-bound request for exactly 3607 seconds, which is what a kubelet asks for the
``kube-api-access`` volume every Pod gets, is answered with a token that holds for a year while
the answer still says 3607 s, so the kubelet renews it on schedule. Clients that read their
token file once and keep it (older client libraries) then keep working past the hour on a real
cluster; a stricter local server would fail long Dask jobs that real clusters run.
"""

from __future__ import annotations

import time
from typing import Any

from . import errors
from .auth import TokenAuthenticator
from .core import APICore

GROUP = "authentication.k8s.io"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32
#: the kubelet's request for the default ``kube-api-access`` volume (``WarnOnlyBoundTokenExpirationSeconds``)
KUBELET_DEFAULT_SECONDS = 3607
#: how long such a token really holds (kube-apiserver's ``ExpirationExtensionSeconds``, a year)
EXTENDED_SECONDS = 365 * 24 * 60 * 60


def _expiration(spec: dict[str, Any], name: str) -> int:
    raw = spec.get("expirationSeconds")
    seconds = DEFAULT_SECONDS if raw is None else int(raw)
    problem = ("may not specify a duration less than 10 minutes" if seconds < MIN_SECONDS else
               "may not specify a duration larger than 2^32 seconds" if seconds > MAX_SECONDS
               else None)
    if problem:
        raise errors.invalid("TokenRequest", name, [errors.Cause(
            "spec.expirationSeconds", f"Invalid value: {seconds}: {problem}")], GROUP)
    return seconds


def _bound_pod(core: APICore, namespace: str, name: str,
               ref: dict[str, Any] | None) -> tuple[str, str] | None:
    """(name, uid) of the Pod the token is bound to, checked against the one in the store."""
    if not ref:
        return None
    if ref.get("kind") != "Pod":
        raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to object of '
                                 f'kind {ref.get("kind")!r}: only Pods are supported')
    pod_type = core.registry.get("", "pods")
    assert pod_type is not None
    pod = core.get(pod_type, "v1", namespace, str(ref.get("name") or ""))
    uid = pod["metadata"]["uid"]
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict("pods", pod["metadata"]["name"], detail=(
            f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
            "record. The object might have been deleted and then recreated"))
    return pod["metadata"]["name"], uid


def token_request(core: APICore, authn: TokenAuthenticator, namespace: str, name: str,
                  body: Any) -> dict[str, Any]:
    """The TokenRequest answer for ServiceAccount ``namespace/name``."""
    spec = dict((body or {}).get("spec") or {})
    sa_type = core.registry.get("", "serviceaccounts")
    assert sa_type is not None
    sa = core.get(sa_type, "v1", namespace, name)
    seconds = _expiration(spec, name)
    pod = _bound_pod(core, namespace, name, spec.get("boundObjectRef"))
    now = int(time.time())
    expires = now + seconds
    extended = pod is not None and seconds == KUBELET_DEFAULT_SECONDS
    token = authn.mint_service_account(namespace, name, sa["metadata"]["uid"], pod=pod,
                                       expires=now + EXTENDED_SECONDS if extended else expires)
    spec["expirationSeconds"] = seconds
    return {"kind": "TokenRequest", "apiVersion": f"{GROUP}/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp":
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))}}
