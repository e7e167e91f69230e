"""The process kubelet: runs the Pods bound to its Node as local processes.

See ``agent.py`` (Node, Lease, Pod watch), ``pod.py`` (the Pod lifecycle), ``container.py``
(containers as processes), ``conmon.py`` (the per-container monitor that outlives the kubelet),
``network.py`` (Pod addresses and Service resolution), ``status.py`` (phase and conditions),
``env.py``, ``volumes.py``, ``probes.py`` and ``resources.py``. Start it with
``python -m dask_kube_jobs.local.kubelet --kubeconfig PATH`` or ``dask-kube-jobs local kubelet``.
"""

from __future__ import annotations

__all__ = ["Kubelet", "main"]


def __getattr__(name: str) -> object:
    # Imported lazily: the package is imported by ``-m`` before its dependencies are needed.
    if name == "Kubelet":
        from .agent import Kubelet

        return Kubelet
    if name == "main":
        from .__main__ import main

        return main
    raise AttributeError(name)
