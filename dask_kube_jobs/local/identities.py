"""Kubeconfigs for identities other than the administrator.

Least-privilege RBAC can only be tested as somebody who lacks privileges. Tokens are minted
offline with the control plane's signing key, so this works whether or not the server runs; a
ServiceAccount token is honoured only while a ServiceAccount of that name exists (see
``apiserver.auth``).
"""

from __future__ import annotations

from pathlib import Path

from . import kubeconfig as kc
from .apiserver.auth import TokenAuthenticator
from .apiserver.bootstrap_rbac import NODE_PREFIX, NODES_GROUP
from .state import StateDir

#: The Node the local control plane's own kubelet registers.
LOCAL_NODE = "dkj-local-node"


def write_identity_kubeconfig(state: StateDir, admin_kubeconfig: Path, path: Path, *,
                              user: str | None, groups: tuple[str, ...] = (),
                              service_account: str | None = None,
                              namespace: str = "default", mode: int = 0o600) -> Path:
    if bool(user) == bool(service_account):
        raise ValueError("give exactly one of a user name or a service account (NAMESPACE/NAME)")
    if not state.key.exists():
        raise FileNotFoundError(f"no signing key in {state.root}: start the control plane first")
    authn = TokenAuthenticator(state.key.read_bytes(), uid_of=lambda *_: None)  # minting only
    if service_account:
        sa_ns, sep, sa_name = service_account.partition("/")
        if not sep or not sa_ns or not sa_name:
            raise ValueError(f"--service-account must be NAMESPACE/NAME, got {service_account!r}")
        token = authn.mint_service_account(sa_ns, sa_name)
        name = f"system:serviceaccount:{sa_ns}:{sa_name}"
        namespace = sa_ns if namespace == "default" else namespace
    else:
        assert user is not None
        token = authn.mint_user(user, groups)
        name = user
    admin = kc.read(admin_kubeconfig)
    server = kc.server_of(admin)
    ca = state.ca_cert.read_bytes() if server.startswith("https") else None
    return kc.write(path, kc.build(server, token, ca_pem=ca, user=name, namespace=namespace,
                                   context=f"{name}@{kc.CLUSTER_NAME}"), mode=mode)


def write_node_kubeconfig(state: StateDir, admin_kubeconfig: Path, path: Path,
                          node_name: str = LOCAL_NODE) -> Path:
    """A kubeconfig for the kubelet of ``node_name``: user ``system:node:<name>`` in
    ``system:nodes``, whose rights come from the Node authorizer (plus whatever RBAC binds to
    that user, such as ``node_proxier_binding``), as a kubelet's client certificate on a real
    cluster."""
    return write_identity_kubeconfig(state, admin_kubeconfig, path, user=NODE_PREFIX + node_name,
                                     groups=(NODES_GROUP,))
