"""The chart rendered and linted by the real Helm engine, in both RBAC modes, without a cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .chart import (
    CHART_DIR,
    CLUSTER_SCOPED_RESOURCES,
    FULLNAME,
    MODES,
    PACKAGE_CRDS,
    RELEASE_NAMESPACE,
    crd_objects,
    helm,
    notes,
    notes_submit_command,
    objects,
    of_kind,
    one,
    render,
)

KUBE_VERSION = "1.32.0"


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())


def rules_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    return role.get("rules") or []


# -- lint and render -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(MODES))
def test_the_chart_lints_clean_in_strict_mode(mode: str) -> None:
    report = helm().lint(str(CHART_DIR), MODES[mode], strict=True, namespace=RELEASE_NAMESPACE,
                         kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], json.dumps(report, indent=1)


@pytest.mark.parametrize("values", [
    pytest.param(MODES["cluster"], id="cluster"),
    pytest.param(MODES["namespaced"], id="namespaced"),
    pytest.param({**MODES["cluster"], "replicas": 3}, id="cluster-ha"),
    pytest.param({**MODES["namespaced"], "replicas": 2}, id="namespaced-ha"),
    pytest.param({"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}},
                 id="metrics-and-servicemonitor"),
])
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(values: dict[str, Any]) -> None:
    import kubernetes_validate

    objs = objects(values)
    validated = 0
    for obj in [*objs, *crd_objects()]:
        if obj["apiVersion"].split("/")[0] in ("kopf.dev", "monitoring.coreos.com"):
            continue  # custom resources: checked against their own CRDs on install
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        validated += 1
    assert validated >= 8
    for obj in objs:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"):
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']} has no namespace"


def test_the_chart_crds_are_identical_to_the_package_crds() -> None:
    package = {p.name: p.read_bytes() for p in PACKAGE_CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART_DIR / "crds").glob("*.yaml")}
    assert set(package) == {"daskcluster.yaml", "daskworkergroup.yaml", "daskjob.yaml",
                            "daskautoscaler.yaml", "daskclusterprofile.yaml"}
    assert set(chart) == set(package) | {"kopf-peering.yaml"}
    for name, content in package.items():
        assert chart[name] == content, (
            f"charts/dask-kube-jobs/crds/{name} differs from dask_kube_jobs/crds/{name}: copy it "
            f"(cp dask_kube_jobs/crds/*.yaml charts/dask-kube-jobs/crds/)")


def test_the_default_image_is_the_operator_image_at_the_chart_app_version() -> None:
    deploy = one(objects(), "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == (
        f"ghcr.io/dask-kube-jobs/dask-kube-jobs-operator:{chart_meta()['appVersion']}")
    pinned = one(objects({"image": {"digest": "sha256:" + "a" * 64}}), "Deployment")
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)


# -- values.schema.json ----------------------------------------------------------------------

@pytest.mark.parametrize("values,field", [
    pytest.param({"rbac": {"scope": "everywhere"}}, "/rbac/scope", id="unknown-rbac-scope"),
    pytest.param({"rbac": {"scope": "namespaced"}}, "/watchNamespaces", id="namespaced-without-namespaces"),
    pytest.param({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0", id="invalid-namespace-name"),
    pytest.param({"replicas": 0}, "/replicas", id="zero-replicas"),
    pytest.param({"replicas": "2"}, "/replicas", id="replicas-as-string"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="bad-pull-policy"),
    pytest.param({"rbac": {"scpoe": "cluster"}}, "/rbac", id="misspelt-field"),
    pytest.param({"replica": 2}, "additional properties 'replica'", id="misspelt-top-level-field"),
    pytest.param({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory",
                 id="bad-quantity"),
    pytest.param({"operator": {"healthPort": 70000}}, "/operator/healthPort", id="port-out-of-range"),
    pytest.param({"metrics": {"serviceMonitor": {"interval": "often"}}},
                 "/metrics/serviceMonitor/interval", id="bad-scrape-interval"),
])
def test_bad_values_are_refused_with_the_field_named(values: dict[str, Any], field: str) -> None:
    with pytest.raises(helm().HelmValuesError) as info:
        render(values)
    assert field in str(info.value)


@pytest.mark.parametrize("image", [{"tag": "latest"}, {"tag": "latest", "digest": "sha256:" + "a" * 64}],
                         ids=["tag", "tag-and-digest"])
def test_the_latest_tag_is_refused_with_a_message_saying_what_to_set(image: dict[str, Any]) -> None:
    with pytest.raises(helm().HelmError) as info:
        render({"image": image})
    message = str(info.value)
    assert 'image.tag: "latest" is refused' in message, message
    assert f"the chart's appVersion ({chart_meta()['appVersion']})" in message, message
    assert "'not' failed" not in message


def test_a_service_monitor_without_metrics_is_refused_with_the_field_named() -> None:
    with pytest.raises(helm().HelmError, match="metrics.serviceMonitor.enabled requires metrics.enabled"):
        render({"metrics": {"serviceMonitor": {"enabled": True}}})


# -- RBAC ------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    pytest.param(MODES["cluster"], id="cluster"),
    pytest.param(MODES["namespaced"], id="namespaced"),
    pytest.param({**MODES["cluster"], "replicas": 2}, id="cluster-ha"),
    pytest.param({**MODES["namespaced"], "replicas": 2}, id="namespaced-ha"),
])
def test_no_rule_uses_a_wildcard(values: dict[str, Any]) -> None:
    for role in [*of_kind(objects(values), "Role"), *of_kind(objects(values), "ClusterRole")]:
        for rule in rules_of(role):
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: {rule}"


def test_cluster_mode_binds_one_cluster_role_and_watches_all_namespaces() -> None:
    objs = objects(MODES["cluster"])
    assert not of_kind(objs, "Role") and not of_kind(objs, "RoleBinding")
    bindings = {b["metadata"]["name"]: b for b in of_kind(objs, "ClusterRoleBinding")}
    # the operator's, and everyone's read of the DaskClusterProfiles (nothing else cluster-wide)
    assert set(bindings) == {f"{FULLNAME}-operator", f"{FULLNAME}-profile-reader"}
    reader = bindings[f"{FULLNAME}-profile-reader"]
    assert reader["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                   "name": "system:authenticated"}]
    reader_role = next(r for r in of_kind(objs, "ClusterRole")
                       if r["metadata"]["name"] == reader["roleRef"]["name"])
    assert rules_of(reader_role) == [{"apiGroups": ["kubernetes.dask.org"],
                                      "resources": ["daskclusterprofiles"],
                                      "verbs": ["get", "list", "watch"]}]
    binding = bindings[f"{FULLNAME}-operator"]
    assert binding["roleRef"]["name"] == f"{FULLNAME}-operator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME,
                                    "namespace": RELEASE_NAMESPACE}]
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and not [a for a in args if a.startswith("--namespace")]


def test_namespaced_mode_has_roles_in_the_listed_namespaces_only_and_nothing_cluster_wide() -> None:
    objs = objects(MODES["namespaced"])
    roles = of_kind(objs, "Role")
    bindings = of_kind(objs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"{FULLNAME}-operator"}
        assert binding["subjects"][0]["namespace"] == RELEASE_NAMESPACE
    assert not of_kind(objs, "ClusterRoleBinding")
    operator_cluster_roles = [r for r in of_kind(objs, "ClusterRole")
                              if r["metadata"]["name"] == f"{FULLNAME}-operator"]
    assert not operator_cluster_roles
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace") or a.startswith("-A")
            or a == "--all-namespaces"] == ["--namespace=team-a", "--namespace=team-b"]


@pytest.mark.parametrize("replicas", [1, 2])
def test_namespaced_roles_never_list_a_cluster_scoped_resource(replicas: int) -> None:
    # A cluster-scoped resource in a Role grants nothing: the 403s of dask/dask-kubernetes#916.
    for role in of_kind(objects({**MODES["namespaced"], "replicas": replicas}), "Role"):
        for rule in rules_of(role):
            listed = {r.split("/")[0] for r in rule["resources"]}
            assert not listed & CLUSTER_SCOPED_RESOURCES, f"{role['metadata']['namespace']}: {rule}"


def test_the_operator_rules_cover_what_the_operator_calls() -> None:
    role = next(r for r in of_kind(objects(MODES["cluster"]), "ClusterRole")
                if r["metadata"]["name"] == f"{FULLNAME}-operator")
    granted = {(g, res, v) for rule in rules_of(role) for g in rule["apiGroups"]
               for res in rule["resources"] for v in rule["verbs"]}
    needed = [("", "pods", v) for v in ("get", "list", "watch", "create", "delete", "patch")]
    needed += [("", "services", v) for v in ("get", "list", "watch", "create", "delete", "patch")]
    needed += [("", "events", "create"), ("", "events", "patch"), ("", "pods/log", "get")]
    for plural in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
        needed += [("kubernetes.dask.org", plural, v) for v in ("get", "list", "watch", "patch")]
        needed += [("kubernetes.dask.org", f"{plural}/status", "patch")]
    needed += [("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")]
    needed += [("kubernetes.dask.org", "daskclusterprofiles", v) for v in ("get", "list", "watch")]
    needed += [("", "namespaces", "get")]  # a namespace's default profile and labels
    assert not [n for n in needed if n not in granted]


def test_values_profiles_become_daskclusterprofiles_the_crd_accepts() -> None:
    from dask_kube_jobs import crds
    from dask_kube_jobs.local.apiserver import structural

    spec = {"description": "2-16 GiB workers", "worker": {"replicas": 2, "maxReplicas": 20},
            "locked": ["image"], "image": "ghcr.io/dask/dask:latest",
            "options": [{"name": "worker_memory", "target": "worker.memory",
                         "quantity": {"default": "4Gi", "min": "2Gi", "max": "16Gi"}}]}
    objs = objects({"profiles": [{"name": "standard", "spec": spec, "labels": {"tier": "batch"}}]})
    (profile,) = of_kind(objs, "DaskClusterProfile")
    assert profile["metadata"]["name"] == "standard" and "namespace" not in profile["metadata"]
    assert profile["metadata"]["labels"]["tier"] == "batch"
    assert profile["spec"] == spec
    schema = crds.load_crd("DaskClusterProfile")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural.validate(structural.normalize(profile, schema), schema) == []
    assert not of_kind(objects(), "DaskClusterProfile")  # none by default


def test_user_roles_grant_the_dask_resources_and_read_only_pods_and_aggregate() -> None:
    objs = objects()
    roles = {r["metadata"]["name"]: r for r in of_kind(objs, "ClusterRole")}
    edit, view = roles[f"{FULLNAME}-edit"], roles[f"{FULLNAME}-view"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for role in (edit, view):
        core = [r for r in rules_of(role) if r["apiGroups"] == [""]]
        # read-only on Pods, their logs and Events (to follow a runner), nothing else core
        assert {(res, v) for r in core for res in r["resources"] for v in r["verbs"]} == {
            ("pods", "get"), ("pods", "list"), ("pods", "watch"), ("events", "get"),
            ("events", "list"), ("events", "watch"), ("pods/log", "get")}
        for rule in rules_of(role):
            assert rule["apiGroups"] in (["kubernetes.dask.org"], [""]), rule
    view_verbs = {v for rule in rules_of(view) for v in rule["verbs"]}
    assert view_verbs == {"get", "list", "watch"}
    edit_jobs = next(r for r in rules_of(edit) if "daskjobs" in r["resources"])
    assert {"create", "delete", "watch"} <= set(edit_jobs["verbs"])


# -- the controller Deployment ---------------------------------------------------------------

@pytest.mark.parametrize("mode", list(MODES))
def test_the_deployment_runs_the_operator_module_with_probes_resources_and_a_locked_down_context(
        mode: str) -> None:
    deploy = one(objects(MODES[mode]), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["python", "-m", "dask_kube_jobs.operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--readiness=http://0.0.0.0:8081/readyz" in c["args"]
    assert "--log-format=text" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert {"name": "ready", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    assert not [a for a in c["args"] if a.startswith("--peering")]  # one replica: standalone
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["serviceAccountName"] == FULLNAME
    assert deploy["spec"]["strategy"]["type"] == "Recreate"  # one operator at a time
    assert not [o for o in objects(MODES[mode]) if o["apiVersion"].startswith("kopf.dev")]


@pytest.mark.parametrize("mode,peering_kind,count", [
    ("cluster", "ClusterKopfPeering", 1), ("namespaced", "KopfPeering", 2)])
def test_more_than_one_replica_elects_a_leader_through_kopf_peering(
        mode: str, peering_kind: str, count: int) -> None:
    objs = objects({**MODES[mode], "replicas": 2})
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--peering={FULLNAME}" in args and "--peering-lifetime=60" in args
    peerings = of_kind(objs, peering_kind)
    assert len(peerings) == count and {p["metadata"]["name"] for p in peerings} == {FULLNAME}
    crds = {c["spec"]["names"]["kind"] for c in crd_objects()}
    assert {"KopfPeering", "ClusterKopfPeering"} <= crds
    plural = "clusterkopfpeerings" if mode == "cluster" else "kopfpeerings"
    roles = of_kind(objs, "ClusterRole" if mode == "cluster" else "Role")
    assert all(any(plural in r["resources"] for r in rules_of(role)) for role in roles
               if role["metadata"]["name"] == f"{FULLNAME}-operator")


def test_json_logs_are_a_value_and_a_bad_log_format_fails_at_install_naming_the_field() -> None:
    args = one(objects({"operator": {"logFormat": "json"}}), "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-format=json" in args
    with pytest.raises(helm().HelmValuesError, match="/operator/logFormat"):
        render({"operator": {"logFormat": "yaml"}})


def test_the_service_monitor_is_off_by_default_and_scrapes_the_metrics_port_when_on() -> None:
    assert not [o for o in objects() if o["kind"] in ("ServiceMonitor", "Service")]
    objs = objects({"metrics": {"enabled": True, "serviceMonitor": {"enabled": True,
                                                                   "labels": {"release": "prom"}}}})
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert all(service["metadata"]["labels"][k] == v
               for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--metrics=http://0.0.0.0:9090/metrics" in args


def test_the_notes_say_which_namespaces_are_served_and_how_to_grant_users() -> None:
    text = notes(MODES["namespaced"])
    assert "- team-a" in text and "- team-b" in text
    assert f"--clusterrole={FULLNAME}-edit" in text
    assert "every namespace" in notes(MODES["cluster"])


def test_the_notes_stand_alone_with_a_daskjob_inline() -> None:
    """A chart user has no checkout: the notes name no repository file (test_install runs the job)."""
    text = notes()
    assert "examples/" not in text and ".yaml" not in text
    command = notes_submit_command(text)
    (job,) = yaml.safe_load_all(command.split("\n", 1)[1].rsplit("EOF", 1)[0])
    assert (job["apiVersion"], job["kind"]) == ("kubernetes.dask.org/v1", "DaskJob")
    images = [c["image"] for c in job["spec"]["job"]["spec"]["containers"]]
    images += [c["image"] for part in ("worker", "scheduler")
               for c in job["spec"]["cluster"]["spec"][part]["spec"]["containers"]]
    assert images and not any(i.endswith(":latest") or ":" not in i for i in images)


# -- server-side limits ----------------------------------------------------------------------

LIMITS = {"maxWorkersPerCluster": 50, "maxJobsPerNamespace": 0,
          "resources": {"cpu": {"max": "4"}, "memory": {"min": "128Mi", "max": "16Gi"}},
          "allowedImages": ["ghcr.io/dask/"],
          "podPolicy": {"level": "restricted", "allowedServiceAccounts": ["dask-runner"]},
          "namespaces": {"team-a": {"maxWorkersPerCluster": 200, "allowedImages": None}}}


def operator_env(objs: list[dict[str, Any]]) -> dict[str, Any]:
    env = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value") for e in env}


def test_no_limits_by_default_means_no_configmap_and_nothing_for_the_operator_to_read() -> None:
    objs = objects()
    assert not of_kind(objs, "ConfigMap")
    assert "DKJ_LIMITS_CONFIGMAP" not in operator_env(objs)


@pytest.mark.parametrize("mode", list(MODES))
def test_limits_become_the_configmap_the_operator_reads_and_may_read_by_name_only(mode: str) -> None:
    from dask_kube_jobs.operator.limits import parse_policy

    objs = objects({**MODES[mode], "limits": LIMITS})
    configmap = one(objs, "ConfigMap")
    name = f"{FULLNAME}-limits"
    assert configmap["metadata"] == {**configmap["metadata"], "name": name, "namespace": RELEASE_NAMESPACE}
    assert operator_env(objs)["DKJ_LIMITS_CONFIGMAP"] == f"{RELEASE_NAMESPACE}/{name}"
    # the rendered file is exactly what the operator accepts, zero and null included
    policy = parse_policy(configmap["data"]["limits.yaml"])
    team_a, other = policy.for_namespace("team-a"), policy.for_namespace("other")
    assert (team_a.max_workers_per_cluster, other.max_workers_per_cluster) == (200, 50)
    assert other.max_jobs_per_namespace == 0 and other.allowed_images == ("ghcr.io/dask/",)
    assert team_a.allowed_images is None and other.resources["memory"].max == 16 * 2**30
    assert (team_a.pod_policy.level, other.pod_policy.service_accounts) == ("restricted", ("dask-runner",))
    reader = next(r for r in of_kind(objs, "Role") if r["metadata"]["name"] == f"{FULLNAME}-limits-reader")
    assert reader["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert rules_of(reader) == [{"apiGroups": [""], "resources": ["configmaps"],
                                 "resourceNames": [name], "verbs": ["get"]}]
    binding = next(b for b in of_kind(objs, "RoleBinding")
                   if b["metadata"]["name"] == f"{FULLNAME}-limits-reader")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}]


@pytest.mark.parametrize("limits,field", [
    pytest.param({"maxWorkersPerCluster": -1}, "/limits/maxWorkersPerCluster", id="negative-count"),
    pytest.param({"maxWorkers": 5}, "additional properties 'maxWorkers'", id="misspelt-limit"),
    pytest.param({"resources": {"memory": {"max": "lots"}}}, "/limits/resources/memory/max", id="bad-quantity"),
    pytest.param({"resources": {"cpu": {"maximum": "4"}}}, "/limits/resources/cpu", id="bad-range-key"),
    pytest.param({"allowedImages": "ghcr.io/dask/"}, "/limits/allowedImages", id="images-not-a-list"),
    pytest.param({"podPolicy": {"level": "strict"}}, "/limits/podPolicy/level", id="bad-policy-level"),
    pytest.param({"namespaces": {"a": {"maxJobsPerNamespace": "x"}}},
                 "/limits/namespaces/a/maxJobsPerNamespace", id="bad-override"),
])
def test_bad_limits_are_refused_with_the_field_named(limits: dict[str, Any], field: str) -> None:
    with pytest.raises(helm().HelmValuesError) as info:
        render({"limits": limits})
    assert field in str(info.value)


def test_the_notes_say_which_limits_are_in_force_and_where_to_change_them() -> None:
    text = notes({"limits": LIMITS})
    assert f"{FULLNAME}-limits" in text and "maxWorkersPerCluster" in text
    assert "limits" not in notes().lower()
