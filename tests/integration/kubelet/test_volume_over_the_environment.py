"""A volume mounted above the Python environment or the kubelet's files must not hide them.

On a real cluster the image brings its own filesystem; here the "image" is this machine's
Python environment, so an emptyDir on /tmp (common with readOnlyRootFilesystem) must still let
the container run when the environment or the kubelet's state lives under /tmp -- as it does in
this test session, whose state is under pytest's temporary directory.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(120)


def test_an_emptydir_on_tmp_keeps_the_environment_visible(local_control_plane, kubectl: Kubectl) -> None:  # type: ignore[no-untyped-def]
    assert str(local_control_plane.state.root).startswith("/tmp/")  # the case under test
    script = ("import dask_kube_jobs, os; open('/tmp/mine', 'w').write('1'); "
              "print('files:', 'mine' in os.listdir('/tmp'))")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tmpvol"},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "python:3.11", "command": ["python", "-c", script],
                                    "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}]}}
    kubectl("apply", "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + 60
    phase = ""
    while time.monotonic() < deadline and phase not in ("Succeeded", "Failed"):
        phase = kubectl("get", "pod", "tmpvol", "-o", "jsonpath={.status.phase}").stdout
        time.sleep(0.3)
    assert phase == "Succeeded", kubectl("get", "pod", "tmpvol", "-o", "json").json()["status"]
    assert "files: True" in kubectl("logs", "tmpvol").stdout
    # and the file went to the Pod's emptyDir, not to the machine's /tmp
    assert not os.path.exists("/tmp/mine")
