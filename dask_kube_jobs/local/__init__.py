"""The local control plane: a Kubernetes-compatible API server, controllers and a process kubelet.

Real kubectl, kr8s, kopf and Helm talk to it through the kubeconfig it writes, exactly as to a
cluster; Pods run as processes of the current Python environment. Start one from Python::

    from dask_kube_jobs.local import LocalControlPlane

    with LocalControlPlane() as plane:
        print(plane.kubeconfig)

or from a shell with ``dask-kube-jobs local up``.
"""

from .launcher import ControlPlaneError, LocalControlPlane

__all__ = ["ControlPlaneError", "LocalControlPlane"]
