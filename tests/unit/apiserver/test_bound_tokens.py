"""Bound ServiceAccount tokens: they expire and hold only for the account (and Pod) they name."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from dask_kube_jobs.local.apiserver.auth import TokenAuthenticator
from dask_kube_jobs.local.apiserver.bootstrap_rbac import bootstrap_objects
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.server import APIServer

KEY = b"k" * 32


def test_expired_and_mismatched_tokens_are_refused() -> None:
    now = [1000.0]
    uids = {("serviceaccounts", "ns", "sa"): "sa-1", ("pods", "ns", "p"): "pod-1"}
    authn = TokenAuthenticator(KEY, uid_of=lambda *key: uids.get(key), clock=lambda: now[0])
    bound = authn.mint_service_account("ns", "sa", "sa-1", expires=1600, pod=("p", "pod-1"))
    user = authn.authenticate(bound)
    assert user is not None and user.name == "system:serviceaccount:ns:sa"
    now[0] = 1600.0
    assert authn.authenticate(bound) is None  # expired
    now[0] = 1000.0
    uids[("pods", "ns", "p")] = "pod-2"  # the Pod was deleted and created again
    assert authn.authenticate(bound) is None
    uids[("serviceaccounts", "ns", "sa")] = "sa-2"  # so was the account
    assert authn.authenticate(authn.mint_service_account("ns", "sa", "sa-1")) is None
    assert authn.authenticate(authn.mint_service_account("ns", "sa", "sa-2")) is not None
    # minted offline with the key (no uid): holds while an account of that name exists
    assert authn.authenticate(authn.mint_service_account("ns", "sa")) is not None
    del uids[("serviceaccounts", "ns", "sa")]
    assert authn.authenticate(authn.mint_service_account("ns", "sa")) is None


async def test_token_request_binds_the_token_to_the_account_and_pod() -> None:
    core = APICore()

    def uid_of(resource: str, namespace: str, name: str) -> str | None:
        obj = core.store.get(("", resource), namespace, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    authn = TokenAuthenticator(KEY, uid_of=uid_of)
    core.bootstrap(bootstrap_objects())
    server = APIServer(core, authn)
    admin = {"Authorization": f"Bearer {authn.mint_admin()}"}
    sa: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"serviceAccountName": "sa", "containers": [{"name": "c", "image": "x"}]}}
    base = "/api/v1/namespaces/default"
    async with TestClient(TestServer(server.app)) as client:
        for path, body in ((f"{base}/serviceaccounts", sa), (f"{base}/pods", pod)):
            resp = await client.post(path, json=body, headers=admin)
            assert resp.status == 201, await resp.text()
        pod_uid = (await (await client.get(f"{base}/pods/p", headers=admin)).json())[
            "metadata"]["uid"]

        async def request(spec: dict[str, Any]) -> Any:
            return await client.post(f"{base}/serviceaccounts/sa/token", headers=admin, json={
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})

        resp = await request({"expirationSeconds": 599})
        assert resp.status == 422
        assert "may not specify a duration less than 10 minutes" in await resp.text()
        ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "not-the-pods"}
        assert (await request({"boundObjectRef": ref})).status == 409
        resp = await request({"boundObjectRef": {**ref, "uid": pod_uid}})
        answer = await resp.json()
        assert resp.status == 201 and answer["spec"]["expirationSeconds"] == 3600
        as_sa = {"Authorization": f"Bearer {answer['status']['token']}"}
        assert (await client.get("/api", headers=as_sa)).status == 200
        # the account deleted and created again under the same name: the old token is refused
        assert (await client.delete(f"{base}/serviceaccounts/sa", headers=admin)).status == 200
        assert (await client.post(f"{base}/serviceaccounts", json=sa, headers=admin)).status == 201
        assert (await client.get("/api", headers=as_sa)).status == 401


def test_the_kubelets_default_pod_token_holds_a_year_but_says_3607_seconds() -> None:
    """kube-apiserver's --service-account-extend-token-expiration (on by default)."""
    import time

    from dask_kube_jobs.local.apiserver.tokenrequest import token_request

    core = APICore()
    now = [time.time()]
    uids: dict[tuple[str, str, str], str] = {}
    authn = TokenAuthenticator(KEY, uid_of=lambda *key: uids.get(key), clock=lambda: now[0])
    core.bootstrap(bootstrap_objects())
    sa_type, pod_type = core.registry.get("", "serviceaccounts"), core.registry.get("", "pods")
    assert sa_type is not None and pod_type is not None
    sa = core.create(sa_type, "v1", "default", {"metadata": {"name": "sa"}})
    pod = core.create(pod_type, "v1", "default", {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "sa", "containers": [{"name": "c", "image": "x"}]}})
    uids[("serviceaccounts", "default", "sa")] = sa["metadata"]["uid"]
    uids[("pods", "default", "p")] = pod["metadata"]["uid"]
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}
    answers = {s: token_request(core, authn, "default", "sa",
                                {"spec": {"expirationSeconds": s, "boundObjectRef": ref}})
               for s in (3607, 3600)}
    for seconds, answer in answers.items():
        stamp = time.strptime(answer["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        assert abs(time.mktime(stamp) - time.mktime(time.gmtime(now[0])) - seconds) < 5
    now[0] += 30 * 24 * 3600  # a month later
    assert authn.authenticate(answers[3607]["status"]["token"]) is not None
    assert authn.authenticate(answers[3600]["status"]["token"]) is None
