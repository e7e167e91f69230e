"""The generated CRDs: reproducible, valid for the apiserver, and faithful to Pod/Service."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re

import pytest
import yaml

from dask_kube_jobs import crds, resources
from dask_kube_jobs.crds import _generate, k8s_schemas
from dask_kube_jobs.local.apiserver import crd_validation, objectmeta, structural
from dask_kube_jobs.local.apiserver.registry import type_from_crd
from dask_kube_jobs.local.apiserver.tables import to_table
from dask_kube_jobs.operator import job_status

KINDS = list(crds.CRD_FILES)

# Seed 000 (the migration guide's cluster-spec.yml), as users wrote it.
SEED_000 = """
apiVersion: kubernetes.dask.org/v1
kind: DaskCluster
metadata:
  name: example
  labels:
    foo: bar
spec:
  worker:
    replicas: 2
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: "ghcr.io/dask/dask:latest"
        imagePullPolicy: "IfNotPresent"
        args: [dask-worker, --nthreads, '2', --no-dashboard, --memory-limit, 6GB,
               --death-timeout, '60', '--name', $(DASK_WORKER_NAME)]
        env:
          - name: EXTRA_PIP_PACKAGES
            value: git+https://github.com/dask/distributed
        resources:
          limits:
            cpu: "2"
            memory: 6G
          requests:
            cpu: "2"
            memory: 6G
  scheduler:
    spec:
      containers:
      - name: scheduler
        image: "ghcr.io/dask/dask:latest"
        imagePullPolicy: "IfNotPresent"
        args:
          - dask-scheduler
        ports:
          - name: tcp-comm
            containerPort: 8786
            protocol: TCP
          - name: http-dashboard
            containerPort: 8787
            protocol: TCP
        readinessProbe:
          httpGet:
            port: http-dashboard
            path: /health
          initialDelaySeconds: 5
          periodSeconds: 10
        livenessProbe:
          httpGet:
            port: http-dashboard
            path: /health
          initialDelaySeconds: 15
          periodSeconds: 20
    service:
      type: ClusterIP
      selector:
        dask.org/cluster-name: example
        dask.org/component: scheduler
      ports:
      - name: tcp-comm
        protocol: TCP
        port: 8786
        targetPort: "tcp-comm"
      - name: http-dashboard
        protocol: TCP
        port: 8787
        targetPort: "http-dashboard"
"""

# Seed 003 (RAPIDS): GPU workers, and a scheduler container with an empty ``env:``.
SEED_003 = """
apiVersion: kubernetes.dask.org/v1
kind: DaskCluster
metadata:
  name: rapids-dask-cluster
  labels:
    dask.org/cluster-name: rapids-dask-cluster
spec:
  worker:
    replicas: 2
    spec:
      containers:
        - name: worker
          image: "nvcr.io/nvidia/rapidsai/base:25.04-cuda12.8-py3.12"
          imagePullPolicy: "IfNotPresent"
          args:
            - dask-cuda-worker
            - --name
            - $(DASK_WORKER_NAME)
          resources:
            limits:
              nvidia.com/gpu: "1"
  scheduler:
    spec:
      containers:
        - name: scheduler
          image: "nvcr.io/nvidia/rapidsai/base:25.04-cuda12.8-py3.12"
          imagePullPolicy: "IfNotPresent"
          env:
          args:
            - dask-scheduler
          ports:
            - name: tcp-comm
              containerPort: 8786
              protocol: TCP
            - name: http-dashboard
              containerPort: 8787
              protocol: TCP
          readinessProbe:
            httpGet:
              port: http-dashboard
              path: /health
            initialDelaySeconds: 5
            periodSeconds: 10
          livenessProbe:
            httpGet:
              port: http-dashboard
              path: /health
            initialDelaySeconds: 15
            periodSeconds: 20
    service:
      type: ClusterIP
      selector:
        dask.org/cluster-name: rapids-dask-cluster
        dask.org/component: scheduler
      ports:
        - name: tcp-comm
          protocol: TCP
          port: 8786
          targetPort: "tcp-comm"
        - name: http-dashboard
          protocol: TCP
          port: 8787
          targetPort: "http-dashboard"
"""


@functools.cache
def _schema(kind: str) -> dict:
    return crds.load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def schema_of(kind: str) -> dict:
    return copy.deepcopy(_schema(kind))


def accepted(obj: dict, kind: str) -> dict:
    """What the apiserver stores for ``obj``, asserting it is valid."""
    schema = schema_of(kind)
    stored = structural.normalize(obj, schema)
    assert structural.validate(stored, schema) == []
    return stored


def subschema(schema: dict, path: str) -> dict | None:
    """The schema node of a JSON path such as ``.spec.worker.replicas``; a filter on a list
    (``.status.conditions[?(@.type=="Ready")].status``) steps into the list's items."""
    node: dict | None = schema
    for part in re.sub(r"\[\?\(.*?\)\]", "[]", path).strip(".").split("."):
        name, filtered = part.removesuffix("[]"), part.endswith("[]")
        node = ((node or {}).get("properties") or {}).get(name)
        if filtered:
            node = (node or {}).get("items")
    return node


# ---------------------------------------------------------------- generation


def test_generation_is_deterministic_and_matches_the_committed_yaml():
    first, second = _generate.rendered(), _generate.rendered()
    assert first == second
    for kind in KINDS:
        assert crds.crd_text(kind) == first[crds.CRD_FILES[kind]], (
            "run python -m dask_kube_jobs.crds._generate")


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    assert _generate.main(["--out", str(tmp_path)]) == 0
    assert _generate.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "daskjob.yaml").write_text("stale", encoding="utf-8")
    assert _generate.main(["--out", str(tmp_path), "--check"]) == 1
    assert "daskjob.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
def test_each_crd_passes_the_apiservers_crd_validation(kind):
    crd = crd_validation.default_crd(crds.load_crd(kind))
    assert crd_validation.validate_crd(crd) == []
    assert objectmeta.validate_object_meta(crd["metadata"], namespaced=False) == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_crd_fits_in_kubectl_applys_last_applied_annotation(kind):
    compact = json.dumps(crds.load_crd(kind), separators=(",", ":"))
    assert len(compact.encode()) < 256 * 1024


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_hold_no_refs_or_json_schema_null_types(kind):
    text = json.dumps(schema_of(kind))
    assert "$ref" not in text
    assert '"null"' not in text
    assert "x-kubernetes-patch" not in text


def test_names_and_short_names_follow_upstream():
    names = {kind: crds.load_crd(kind)["spec"]["names"] for kind in KINDS}
    assert names["DaskCluster"]["shortNames"] == ["daskcluster", "dsk"]
    assert names["DaskWorkerGroup"]["shortNames"] == ["daskworkers"]
    assert "djb" in names["DaskJob"]["shortNames"]
    assert all(crds.load_crd(k)["spec"]["group"] == "kubernetes.dask.org" for k in KINDS)


# ---------------------------------------------------------------- subresources and columns


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "DaskClusterProfile"])
def test_every_dask_kind_has_status_with_conditions_and_observed_generation(kind):
    version = crds.load_crd(kind)["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    status = schema_of(kind)["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


@pytest.mark.parametrize("kind", ["DaskCluster", "DaskWorkerGroup"])
def test_scale_subresource_paths_are_declared_in_the_schema(kind):
    scale = crds.load_crd(kind)["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["specReplicasPath"] == ".spec.worker.replicas"
    for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
        assert subschema(schema_of(kind), scale[key]) is not None, scale[key]
    assert subschema(schema_of(kind), scale["statusReplicasPath"])["type"] == "integer"
    assert subschema(schema_of(kind), scale["labelSelectorPath"])["type"] == "string"


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_declared_fields(kind):
    columns = crds.load_crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    for column in columns:
        if column["jsonPath"].startswith(".metadata."):
            continue
        assert subschema(schema_of(kind), column["jsonPath"]) is not None, column


def test_kubectl_get_daskjobs_shows_status_cluster_runner_completions_duration_and_age():
    columns = crds.load_crd("DaskJob")["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert shown[:3] == [("Status", ".status.jobStatus"), ("Cluster", ".status.activeCluster"),
                         ("Runner", ".status.jobRunnerPodName")]
    # batch/v1 Job's last columns
    assert shown[-3:] == [("Completions", ".status.completions"),
                          ("Duration", ".status.duration"), ("Age", ".metadata.creationTimestamp")]


NOW = dt.datetime(2025, 1, 1, 0, 10, tzinfo=dt.timezone.utc)


def printed(kind: str, obj: dict, *, wide: bool = False) -> dict:
    """What ``kubectl get`` prints for ``obj``: the local API server's Table of the real CRD."""
    table = to_table(type_from_crd(crds.load_crd(kind)), [obj], version="v1", now=NOW)
    cells = dict(zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"],
                     strict=True))
    wide_only = {c["name"] for c in table["columnDefinitions"] if c.get("priority")}
    return {k: v for k, v in cells.items() if wide or k not in wide_only}


def _obj(kind: str, spec: dict, status: dict) -> dict:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": kind, "spec": spec, "status": status,
            "metadata": {"name": "x", "namespace": "default",
                         "creationTimestamp": "2025-01-01T00:00:00Z"}}


def test_a_finished_daskjob_prints_completions_and_duration_but_not_its_deleted_cluster():
    start = "2025-01-01T00:01:00Z"
    running = {"jobStatus": "Running", "clusterName": "x", "activeCluster": "x",
               "jobRunnerPodName": "x-runner-1", "startTime": start}
    running.update(job_status.printed_fields({}, running))
    spec = {"cluster": {"spec": {"worker": {"replicas": 2}}}}
    assert printed("DaskJob", _obj("DaskJob", spec, running)) == {
        "Name": "x", "Status": "Running", "Cluster": "x", "Runner": "x-runner-1",
        "Number Of Workers": 2, "Completions": "0/1", "Duration": None, "Age": "10m"}
    # the operator's last writes: Successful (end time), then the cluster torn down
    done = {**running}
    end = {"jobStatus": "Successful", "endTime": "2025-01-01T00:04:05Z"}
    done.update(end, **job_status.printed_fields(done, end), activeCluster=None)
    row = printed("DaskJob", _obj("DaskJob", spec, done))
    assert (row["Status"], row["Cluster"], row["Completions"], row["Duration"]) == \
        ("Successful", None, "1/1", "3m5s")
    assert done["clusterName"] == "x"  # kept as the record (upstream's clients read it)


def test_a_failed_daskjob_stays_at_zero_completions_and_a_job_never_started_has_no_duration():
    assert job_status.printed_fields({"startTime": "2025-01-01T00:00:00Z"},
                              {"jobStatus": "Failed", "endTime": "2025-01-01T02:00:00Z"}) == \
        {"completions": "0/1", "duration": "120m"}
    # refused before admission: no start time, so no duration
    assert job_status.printed_fields({}, {"jobStatus": "Failed", "endTime": "2025-01-01T02:00:00Z"}) == \
        {"completions": "0/1"}
    assert job_status.printed_fields({"jobStatus": "Running"}, {"message": "waiting"}) == {}


def test_daskcluster_workers_and_ready_count_the_pods_of_all_its_groups():
    # the default group asks for 1 worker, an extra group for 2: 3 exist, 2 are ready
    status = {"phase": "Running", "workers": 3, "readyWorkers": 2,
              "conditions": [{"type": "SchedulerReady", "status": "True"}]}
    row = printed("DaskCluster", _obj("DaskCluster", {"worker": {"replicas": 1}}, status))
    assert (row["Workers"], row["Ready"], row["Status"], row["Scheduler Ready"]) == \
        (3, 2, "Running", "True")


def test_daskautoscaler_desired_is_what_the_group_was_set_to_not_the_raw_target():
    # an idle scheduler asks for 0 workers; the group is held at its minimum of 1
    status = {"workerGroup": "x-default", "desiredWorkers": 0, "currentWorkers": 1}
    spec = {"cluster": "x", "minimum": 1, "maximum": 3}
    row = printed("DaskAutoscaler", _obj("DaskAutoscaler", spec, status), wide=True)
    assert (row["Minimum"], row["Maximum"], row["Desired"], row["Target"]) == (1, 3, 1, 0)
    assert "Target" not in printed("DaskAutoscaler", _obj("DaskAutoscaler", spec, status))


@pytest.mark.parametrize("kind", ["DaskCluster", "DaskWorkerGroup", "DaskJob",
                                  "DaskAutoscaler"])
def test_kr8s_classes_match_the_crds(kind):
    crd = crds.load_crd(kind)
    names = crd["spec"]["names"]
    for cls in (getattr(resources, kind), getattr(resources, f"Async{kind}")):
        assert cls.version == f"{crd['spec']['group']}/v1"
        assert (cls.kind, cls.plural, cls.singular, cls.endpoint) == (
            kind, names["plural"], names["singular"], names["plural"])
        assert cls.namespaced
        scale = crd["spec"]["versions"][0]["subresources"].get("scale")
        assert cls.scalable == bool(scale)
        if scale:
            assert "." + "spec." + cls.scalable_spec == scale["specReplicasPath"]
    assert getattr(resources, kind)._asyncio is False
    assert getattr(resources, f"Async{kind}")._asyncio is True


# ---------------------------------------------------------------- upstream manifests


@pytest.mark.parametrize("text", [SEED_000, SEED_003], ids=["seed-000-migration", "seed-003-gpu"])
def test_upstream_cluster_manifests_validate_and_are_not_pruned(text):
    manifest = yaml.safe_load(text)
    schema = schema_of("DaskCluster")
    assert structural.prune(manifest, schema) == manifest
    stored = accepted(manifest, "DaskCluster")
    assert stored["spec"]["worker"]["spec"] == manifest["spec"]["worker"]["spec"]
    assert stored["spec"]["scheduler"]["service"] == manifest["spec"]["scheduler"]["service"]


def test_an_empty_env_in_a_container_is_kept_as_kubernetes_keeps_it():
    stored = accepted(yaml.safe_load(SEED_003), "DaskCluster")
    assert stored["spec"]["scheduler"]["spec"]["containers"][0]["env"] is None


def test_a_minimal_daskjob_gets_upstream_and_job_style_defaults():
    job = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
           "metadata": {"name": "j", "namespace": "default"},
           "spec": {"job": {"spec": {"containers": [{"name": "job", "image": "x"}]}},
                    "cluster": {"spec": yaml.safe_load(SEED_000)["spec"]}}}
    stored = accepted(job, "DaskJob")
    assert stored["spec"]["backoffLimit"] == 0  # no retry unless asked for (batch/v1 Job would say 6)
    assert stored["spec"]["suspend"] is False
    assert stored["spec"]["keepClusterOnFailure"] is False
    assert stored["spec"]["cluster"]["spec"]["idleTimeout"] == 0
    assert "activeDeadlineSeconds" not in stored["spec"]


def test_daskjob_status_holds_upstream_and_our_fields():
    status = {"jobStatus": "Failed", "clusterName": "j", "activeCluster": None,
              "completions": "0/1", "duration": "1m", "jobRunnerPodName": "j-runner-2",
              "startTime": "2025-01-01T00:00:00Z", "endTime": "2025-01-01T00:01:00Z",
              "attempts": 2, "failed": 2, "exitCode": 137, "reason": "OOMKilled",
              "message": "the runner ran out of memory", "result": {"a": [1, "x"]},
              "logTail": "Killed\n", "observedGeneration": 1, "lastFailedAttempt": 2,
              "retryAt": None,
              "conditions": [{"type": "Failed", "status": "True", "reason": "OOMKilled",
                              "message": "", "lastTransitionTime": "2025-01-01T00:01:00Z"}]}
    schema = schema_of("DaskJob")
    assert structural.prune({"status": status}, schema) == {"status": status}
    assert structural.validate({"spec": {"job": {"spec": {"containers": []}},
                                         "cluster": {"spec": {"scheduler": {"spec": {
                                             "containers": []}, "service": {}},
                                             "worker": {"spec": {"containers": []}}}}},
                                "status": status}, schema) == []


@pytest.mark.parametrize("result", [{"total": 42}, [1, 2], "plain text", 3.5, None],
                         ids=["object", "list", "string", "number", "null"])
def test_a_daskjob_result_may_be_any_json_value(result):
    schema = schema_of("DaskJob")
    body = {"status": {"result": result}}
    assert structural.normalize(body, schema) == body
    assert structural.validate(body, {**schema, "required": []}) == []


def test_cluster_metadata_of_a_daskjob_is_kept():
    schema = schema_of("DaskJob")
    body = {"spec": {"cluster": {"metadata": {"labels": {"team": "a"},
                                              "annotations": {"x/y": "z"}}}}}
    assert structural.prune(body, schema) == body


def test_autoscaler_accepts_an_optional_worker_group_and_requires_bounds():
    schema = schema_of("DaskAutoscaler")
    ok = {"spec": {"cluster": "c", "workerGroup": "c-highmem", "minimum": 1, "maximum": 5,
                   "intervalSeconds": 0.5, "scaleUpCooldownSeconds": 10,
                   "scaleDownStabilizationSeconds": 60},
          "status": {"workerGroup": "c-highmem", "desiredWorkers": 3, "currentWorkers": 3,
                     "observedGeneration": 1,
                     "lastDecision": {"time": "2025-01-01T00:00:00Z", "from": 1, "to": 3,
                                      "target": 3, "reason": "scheduler wants 3"}}}
    assert structural.prune(ok, schema) == ok
    assert structural.validate(ok, schema) == []
    errors = structural.validate({"spec": {"cluster": "c", "minimum": -1}}, schema)
    fields = {e.field for e in errors}
    assert {"spec.maximum", "spec.minimum"} <= fields


def test_negative_worker_replicas_are_rejected():
    manifest = yaml.safe_load(SEED_000)
    manifest["spec"]["worker"]["replicas"] = -1
    errors = structural.validate(manifest, schema_of("DaskCluster"))
    assert [e.field for e in errors] == ["spec.worker.replicas"]


# ---------------------------------------------------------------- fidelity to Kubernetes


def pod_spec_schema() -> dict:
    return schema_of("DaskCluster")["properties"]["spec"]["properties"]["worker"][
        "properties"]["spec"]


@pytest.mark.parametrize("field, value", [
    ("resizePolicy", [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]),
    ("restartPolicy", "Always"),  # a sidecar init container
], ids=["container-resizePolicy", "sidecar-restartPolicy"])
def test_recent_container_fields_survive_pruning(field, value):
    spec = {"initContainers": [{"name": "side", "image": "x", field: value}],
            "containers": [{"name": "c", "image": "x", field: value}]}
    assert structural.prune(spec, pod_spec_schema()) == spec


@pytest.mark.parametrize("field, value", [
    ("resourceClaims", [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}]),
    ("schedulingGates", [{"name": "example.com/wait"}]),
    ("hostUsers", False),
    ("os", {"name": "linux"}),
], ids=["resourceClaims", "schedulingGates", "hostUsers", "os"])
def test_recent_pod_fields_survive_pruning(field, value):
    spec = {"containers": [{"name": "c", "image": "x"}], field: value}
    assert structural.prune(spec, pod_spec_schema()) == spec


def test_fractional_cpu_quantities_are_accepted_as_by_the_pod_api():
    manifest = yaml.safe_load(SEED_000)
    manifest["spec"]["worker"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": 0.5, "memory": "1Gi"}, "limits": {"cpu": 2}}
    stored = accepted(manifest, "DaskCluster")
    assert stored["spec"]["worker"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == 0.5


def _missing_fields(definition: dict, ours: dict, path: str, seen: frozenset) -> list[str]:
    """Properties Kubernetes declares that ``ours`` would prune."""
    definition = k8s_schemas.resolve(definition) or {}
    if ours.get("x-kubernetes-preserve-unknown-fields"):
        return []
    missing = []
    for key, sub in (definition.get("properties") or {}).items():
        ref = (sub.get("$ref") or "").rsplit("/", 1)[-1]
        if key not in (ours.get("properties") or {}):
            missing.append(f"{path}.{key}")
        elif ref.endswith("ObjectMeta") or ref in seen:
            continue
        else:
            missing += _missing_fields(sub, ours["properties"][key], f"{path}.{key}",
                                       seen | {ref})
    items = definition.get("items")
    if isinstance(items, dict):
        missing += _missing_fields(items, ours.get("items") or {}, f"{path}[]", seen)
    extra = definition.get("additionalProperties")
    if isinstance(extra, dict):
        missing += _missing_fields(extra, ours.get("additionalProperties") or {}, f"{path}{{}}",
                                   seen)
    return missing


def test_no_field_of_the_kubernetes_pod_spec_or_service_spec_is_pruned():
    defs = k8s_schemas.definitions()
    scheduler = schema_of("DaskCluster")["properties"]["spec"]["properties"]["scheduler"]
    assert _missing_fields(defs["io.k8s.api.core.v1.PodSpec"], pod_spec_schema(), "spec",
                           frozenset()) == []
    assert _missing_fields(defs["io.k8s.api.core.v1.ServiceSpec"],
                           scheduler["properties"]["service"], "service", frozenset()) == []


def test_list_map_keys_that_kubernetes_defaults_get_the_same_default():
    containers = pod_spec_schema()["properties"]["containers"]
    ports = containers["items"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert ports["items"]["properties"]["protocol"]["default"] == "TCP"
    spec = {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}
    defaulted = structural.apply_defaults(spec, pod_spec_schema())
    assert defaulted["containers"][0]["ports"][0]["protocol"] == "TCP"


def test_the_three_pod_specs_of_a_daskjob_are_identical():
    spec = schema_of("DaskJob")["properties"]["spec"]["properties"]
    runner = spec["job"]["properties"]["spec"]
    cluster = spec["cluster"]["properties"]["spec"]["properties"]
    worker = cluster["worker"]["properties"]["spec"]
    scheduler = cluster["scheduler"]["properties"]["spec"]

    def body(s: dict) -> dict:
        return {k: v for k, v in copy.deepcopy(s).items() if k != "description"}

    assert body(runner) == body(worker) == body(scheduler) == body(pod_spec_schema())


@pytest.mark.parametrize("has_cluster,has_ref,ok", [
    pytest.param(True, False, True, id="own-cluster"),
    pytest.param(False, True, True, id="existing-cluster"),
    pytest.param(True, True, False, id="both"),
    pytest.param(False, False, False, id="neither"),
])
def test_a_daskjob_names_exactly_one_of_cluster_and_cluster_ref(has_cluster, has_ref, ok):
    from dask_kube_jobs.local.apiserver import celrules

    spec: dict = {"job": {"spec": {"containers": [{"name": "job", "image": "x"}]}}}
    if has_cluster:
        spec["cluster"] = {"spec": yaml.safe_load(SEED_000)["spec"]}
    if has_ref:
        spec["clusterRef"] = {"name": "shared"}
    job = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
           "metadata": {"name": "j", "namespace": "default"}, "spec": spec}
    stored = accepted(job, "DaskJob")
    assert stored["spec"].get("clusterRef") == spec.get("clusterRef")  # kept, not pruned
    causes = celrules.validate(stored, None, schema_of("DaskJob"))
    assert (causes == []) is ok, causes
    if not ok:
        assert "exactly one of spec.cluster" in causes[0].message
