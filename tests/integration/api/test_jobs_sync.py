"""The sync job API against the local control plane: real operator, kubelet and Dask."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import dask_kube_jobs
from dask_kube_jobs import (
    DaskJobFailed,
    DaskJobHandle,
    JobAlreadyExists,
    JobNotFound,
    NamespaceNotFound,
    SpecError,
    WaitTimeout,
    get_job,
    list_jobs,
    submit,
)
from dask_kube_jobs.local.testing import Kubectl

from .manifests import failing_job, result_job, retrying_job, sleeping_job

pytestmark = pytest.mark.timeout(180)


def test_submit_then_wait_returns_the_final_status_and_result(kubeconfig: str,
                                                               namespace: str) -> None:
    job = submit(result_job("adds"), namespace=namespace, kubeconfig=kubeconfig)
    assert (job.name, job.namespace) == ("adds", namespace)
    final = job.wait(timeout=120)
    assert final.phase == "Successful" and final.done
    assert final.exit_code == 0 and final.attempts == 1
    assert final.result == {"total": 6, "ok": True}
    assert job.result() == {"total": 6, "ok": True}
    assert job.phase == "Successful"
    assert job.status().runner_pod == final.runner_pod
    assert "total is 6" in job.logs()


def test_reads_are_methods_and_properties_say_what_was_last_seen(
        kubeconfig: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit(result_job("shaped"), namespace=namespace, kubeconfig=kubeconfig)
    job.wait(timeout=120)
    # A handle by name has seen nothing yet: its properties make no request.
    later = DaskJobHandle.from_name("shaped", namespace, kubeconfig=kubeconfig)
    assert later.phase is None and later.last_status.phase is None
    assert later.result() == {"total": 6, "ok": True}  # a read: it renews what was seen
    assert later.phase == "Successful" and later.last_status.exit_code == 0
    assert later.status().runner_pod == job.last_status.runner_pod
    assert later.refresh()["metadata"]["uid"] == job.uid == later.uid
    monkeypatch.setenv("DASK_KUBE_JOBS_DASHBOARD_TEMPLATE", "https://dask.example.com/{job}")
    assert later.dashboard_link() == "https://dask.example.com/shaped"


def test_the_reads_that_were_properties_still_work_as_values_and_warn_once(
        kubeconfig: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit(result_job("old-style"), namespace=namespace, kubeconfig=kubeconfig)
    job.wait(timeout=120)
    monkeypatch.setenv("DASK_KUBE_JOBS_DASHBOARD_TEMPLATE", "https://dask.example.com/{job}")
    old_uses = [
        ("job.result()", lambda: job.result == {"total": 6, "ok": True}),
        ("job.result()", lambda: job.result["total"] == 6),
        ("job.status()", lambda: job.status.phase == "Successful"),
        ("job.dashboard_link()",
         lambda: job.dashboard_link == "https://dask.example.com/old-style"),
    ]
    for call, use in old_uses:
        with pytest.warns(DeprecationWarning) as record:
            assert use() is True
        assert len(record) == 1, [str(w.message) for w in record]
        assert f"is a method now: call {call}" in str(record[0].message)
        assert record[0].filename == __file__


def test_a_failed_job_raises_with_exit_code_reason_and_log_tail(kubeconfig: str,
                                                                namespace: str) -> None:
    job = submit(failing_job("breaks"), namespace=namespace, kubeconfig=kubeconfig)
    with pytest.raises(DaskJobFailed) as info:
        job.wait(timeout=120)
    exc = info.value
    assert exc.exit_code == 3 and exc.reason == "Error" and exc.job == "breaks"
    assert "boom: the input is missing" in (exc.log_tail or "")
    assert "exited with code 3" in (exc.message or "")
    assert exc.status.phase == "Failed"
    assert isinstance(exc, dask_kube_jobs.DaskKubeJobsError)


def test_wait_survives_watch_requests_the_server_ends(kubeconfig: str, namespace: str) -> None:
    job = submit(sleeping_job("patient", 6), namespace=namespace, kubeconfig=kubeconfig)
    job.watch_timeout = 1  # the API server closes each watch after 1 s: a real drop each time
    phases = [st.phase for st in job.watch()]
    assert phases[-1] == "Successful"
    assert "Running" in phases
    order = ["JobCreated", "ClusterCreated", "Running", "Successful"]
    seen = [order.index(p) for p in phases if p]
    assert seen == sorted(seen), phases  # phases only move forward
    assert job.watch_connections >= 4, job.watch_connections
    assert job.wait(timeout=5).phase == "Successful"  # finished: answered from one list


def test_get_job_reattaches_and_list_jobs_selects_by_label(kubeconfig: str,
                                                          namespace: str) -> None:
    manifest = result_job("labelled")
    manifest["metadata"]["labels"] = {"team": "data"}
    first = submit(manifest, namespace=namespace, kubeconfig=kubeconfig)
    submit(result_job("other"), namespace=namespace, kubeconfig=kubeconfig)
    again = get_job("labelled", namespace, kubeconfig=kubeconfig)
    assert again.uid == first.uid
    assert again.wait(timeout=120).result == {"total": 6, "ok": True}
    assert [j.name for j in list_jobs(namespace, labels={"team": "data"},
                                      kubeconfig=kubeconfig)] == ["labelled"]
    assert [j.name for j in list_jobs(namespace, "team!=data", kubeconfig=kubeconfig)] == ["other"]
    assert sorted(j.name for j in list_jobs(namespace, kubeconfig=kubeconfig)) == \
        ["labelled", "other"]
    with pytest.raises(JobNotFound, match='"nope" not found'):
        get_job("nope", namespace, kubeconfig=kubeconfig)
    with pytest.raises(JobAlreadyExists):
        submit(result_job("labelled"), namespace=namespace, kubeconfig=kubeconfig)


def test_a_late_follower_still_sees_every_attempt(kubeconfig: str, namespace: str) -> None:
    job = submit(retrying_job("late"), namespace=namespace, kubeconfig=kubeconfig)
    job.wait(timeout=120)  # both attempts are over before anyone follows
    assert list(job.logs(follow=True)) == ["attempt 1 starts", "attempt 1 fails",
                                           "attempt 2 starts", "attempt 2 succeeds"]


def test_following_the_log_continues_with_the_next_attempt(kubeconfig: str,
                                                          namespace: str) -> None:
    job = submit(retrying_job("retries"), namespace=namespace, kubeconfig=kubeconfig)
    lines = list(job.logs(follow=True))
    assert lines == ["attempt 1 starts", "attempt 1 fails", "attempt 2 starts",
                     "attempt 2 succeeds"], lines
    final = job.wait(timeout=30)
    assert final.attempts == 2 and final.failed == 1 and final.runner_pod.endswith("-2")
    assert job.logs() == "attempt 2 starts\nattempt 2 succeeds\n"  # the current runner's


def test_delete_removes_the_job_and_its_pods(kubeconfig: str, namespace: str,
                                             kubectl: Kubectl) -> None:
    job = submit(sleeping_job("doomed", 60), namespace=namespace, kubeconfig=kubeconfig)
    for st in job.watch():
        if st.phase == "Running":
            break
    runner = job.status().runner_pod
    assert kubectl("get", "pod", runner, "-o", "name").stdout.strip() == f"pod/{runner}"
    assert job.delete(wait=True) is True
    with pytest.raises(JobNotFound):
        job.status()
    assert kubectl("get", "pods", "-o", "name").stdout.strip() == ""
    assert kubectl("get", "daskclusters", "-o", "name").stdout.strip() == ""
    assert job.delete() is False


def test_waiting_on_a_job_deleted_meanwhile_raises_job_not_found(kubeconfig: str,
                                                                 namespace: str) -> None:
    job = submit(sleeping_job("vanishes", 60), namespace=namespace, kubeconfig=kubeconfig)
    deleter = threading.Timer(3.0, lambda: get_job("vanishes", namespace,
                                                   kubeconfig=kubeconfig).delete(wait=False))
    deleter.start()
    try:
        with pytest.raises(JobNotFound, match="vanishes"):
            job.wait(timeout=60)
    finally:
        deleter.join()


def test_wait_timeout_leaves_the_job_running(kubeconfig: str, namespace: str) -> None:
    job = submit(sleeping_job("slow", 60), namespace=namespace, kubeconfig=kubeconfig)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        job.wait(timeout=1.5)
    assert 1.4 < time.monotonic() - started < 10
    assert isinstance(info.value, TimeoutError)
    assert get_job("slow", namespace, kubeconfig=kubeconfig).phase in (
        "JobCreated", "ClusterCreated", "Running")
    job.delete(wait=False)


def test_dashboard_link_while_the_cluster_runs(kubeconfig: str, namespace: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit(sleeping_job("dash", 60), namespace=namespace, kubeconfig=kubeconfig)
    deadline = time.monotonic() + 60
    while job.dashboard_link() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.dashboard_link() == \
        f"http://dash-scheduler.{namespace}.svc.cluster.local:8787/status"
    monkeypatch.setenv("DASK_KUBE_JOBS_DASHBOARD_TEMPLATE",
                       "https://dask.example.com/{namespace}/{cluster}/status")
    assert job.dashboard_link() == f"https://dask.example.com/{namespace}/dash/status"
    job.delete(wait=False)


def test_a_bad_manifest_is_refused_naming_the_field_before_sending(kubeconfig: str,
                                                                   namespace: str) -> None:
    manifest = result_job("no-image")
    del manifest["spec"]["job"]["spec"]["containers"][0]["image"]
    with pytest.raises(SpecError) as info:
        submit(manifest, namespace=namespace, kubeconfig=kubeconfig)
    assert info.value.argument == "spec.job.spec.containers[0].image"
    with pytest.raises(SpecError, match="metadata.namespace"):
        submit({**result_job("elsewhere"), "metadata": {"name": "elsewhere",
                                                        "namespace": "other"}},
               namespace=namespace, kubeconfig=kubeconfig)
    assert list_jobs(namespace, kubeconfig=kubeconfig) == []


def test_a_missing_namespace_is_said_as_such_not_as_missing_crds(kubeconfig: str) -> None:
    with pytest.raises(NamespaceNotFound) as info:
        submit(result_job("nowhere"), namespace="no-such-namespace", kubeconfig=kubeconfig)
    assert info.value.namespace == "no-such-namespace"
    assert 'namespace "no-such-namespace" does not exist' in str(info.value)
    assert "kubectl create namespace no-such-namespace" in info.value.hint


def test_a_server_whose_certificate_does_not_verify_says_tls(kubeconfig: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in config["clusters"]:  # the system's CAs, not the local control plane's own
        cluster["cluster"].pop("certificate-authority-data", None)
        cluster["cluster"].pop("certificate-authority", None)
    wrong = tmp_path / "wrong-ca.yaml"
    wrong.write_text(yaml.safe_dump(config))
    with pytest.raises(dask_kube_jobs.KubeconfigError) as info:
        list_jobs(kubeconfig=str(wrong))
    assert "TLS with the Kubernetes API server at https://127.0.0.1:" in str(info.value)
    assert "certificate" in str(info.value) and "certificate-authority" in info.value.hint


def test_refused_credentials_say_so_with_what_to_refresh(kubeconfig: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": "expired-or-made-up"}
    wrong = tmp_path / "expired.yaml"
    wrong.write_text(yaml.safe_dump(config))
    with pytest.raises(dask_kube_jobs.APIRequestError) as info:
        list_jobs(kubeconfig=str(wrong))
    assert info.value.code == 401 and "credentials" in info.value.hint


@pytest.mark.parametrize("name", [None, "", 42])
def test_get_job_with_a_bad_name_says_which_argument(kubeconfig: str, name: object) -> None:
    with pytest.raises(SpecError, match="name"):
        get_job(name, kubeconfig=kubeconfig)  # type: ignore[arg-type]


def test_submit_accepts_yaml_text_a_file_and_make_job_spec(kubeconfig: str, namespace: str,
                                                           tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(result_job("from-file")))
    from_file = submit(path, namespace=namespace, kubeconfig=kubeconfig)
    from_text = submit(yaml.safe_dump(result_job("from-text")), namespace=namespace,
                       kubeconfig=kubeconfig)
    built = dask_kube_jobs.make_job_spec(
        "built", command=["python", "-c", "import dask_kube_jobs; dask_kube_jobs.set_result(7)"],
        n_workers=1)
    from_builder = submit(built, namespace=namespace, kubeconfig=kubeconfig)
    assert from_file.wait(120).result == {"total": 6, "ok": True}
    assert from_text.wait(120).result == {"total": 6, "ok": True}
    assert from_builder.wait(120).result == 7
