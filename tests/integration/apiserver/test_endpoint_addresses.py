"""Endpoints refuse the addresses a real kube-apiserver refuses (loopback above all, which every
Pod of the process kubelet has), with its field paths and words."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.kubectl


def endpoints(name: str, addresses: list[str], not_ready: list[str] = ()) -> str:  # type: ignore[assignment]
    subset: dict = {"addresses": [{"ip": ip} for ip in addresses], "ports": [{"port": 80}]}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return json.dumps({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                       "subsets": [subset]})


def test_loopback_and_other_special_addresses_are_refused(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", input=endpoints("lo", ["10.1.2.3", "127.201.0.9"]),
                  check=False)
    assert out.returncode != 0
    assert ('The Endpoints "lo" is invalid: subsets[0].addresses[1].ip: Invalid value: '
            '"127.201.0.9": may not be in the loopback range (127.0.0.0/8, ::1/128)') \
        in out.stderr, out.stderr
    out = kubectl("create", "-f", "-", input=endpoints("odd", ["0.0.0.0"], ["169.254.1.1"]),
                  check=False)
    assert 'subsets[0].addresses[0].ip: Invalid value: "0.0.0.0": may not be unspecified ' \
        "(0.0.0.0)" in out.stderr, out.stderr
    assert 'subsets[0].notReadyAddresses[0].ip: Invalid value: "169.254.1.1": may not be in ' \
        "the link-local range (169.254.0.0/16, fe80::/10)" in out.stderr, out.stderr
    # an update is checked too; an ordinary address is fine
    kubectl("create", "-f", "-", input=endpoints("ok", ["10.1.2.3"]))
    out = kubectl("replace", "-f", "-", input=endpoints("ok", ["127.0.0.1"]), check=False)
    assert "may not be in the loopback range" in out.stderr, out.stderr
