"""docs/profiles.md: every block is what the code does. The profile is examples/profile.yaml,
the API server accepts each DaskClusterProfile (the chart values' too), the user's cluster
resolves against it, and the refusal printed is the operator's own message."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from dask_kube_jobs import crds
from dask_kube_jobs.contract.names import ANNOTATION_DEFAULT_PROFILE
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.operator import profiles

from ..doc_blocks import blocks

REPO = Path(__file__).resolve().parents[2]
BLOCKS = [(b.lang, b.code) for b in blocks(REPO / "docs" / "profiles.md")]


def yaml_blocks() -> list[dict]:
    return [yaml.safe_load(text) for lang, text in BLOCKS if lang == "yaml"]


def of_kind(kind: str) -> list[dict]:
    return [d for d in yaml_blocks() if d.get("kind") == kind]


def test_every_block_is_checked_here():
    assert [lang for lang, _ in BLOCKS] == ["yaml", "yaml", "yaml", "yaml", "text"]


def test_the_profile_is_the_example_file():
    (documented,) = of_kind("DaskClusterProfile")
    assert documented == yaml.safe_load((REPO / "examples" / "profile.yaml").read_text())


def test_the_api_server_accepts_the_documented_profiles_and_cluster():
    core = APICore()
    core.bootstrap()
    crd_type = core.registry.get("apiextensions.k8s.io", "customresourcedefinitions")
    for kind in crds.CRD_FILES:
        core.create(crd_type, "v1", None, crds.load_crd(kind))
    plural = core.registry.get("kubernetes.dask.org", "daskclusterprofiles")
    (values,) = [d for d in yaml_blocks() if "profiles" in d]
    made = [*of_kind("DaskClusterProfile"),
            *({"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
               "metadata": {"name": p["name"]}, "spec": p["spec"]} for p in values["profiles"])]
    for body in made:
        core.create(plural, "v1", None, copy.deepcopy(body))
    core.create(core.registry.get("kubernetes.dask.org", "daskclusters"), "v1", "default",
                copy.deepcopy(of_kind("DaskCluster")[0]))


def test_the_users_cluster_resolves_and_its_greedy_twin_is_refused_in_the_documented_words():
    (profile,) = of_kind("DaskClusterProfile")
    (cluster,) = of_kind("DaskCluster")
    ref = cluster["spec"]["profile"]
    assert ref["name"] == profile["metadata"]["name"]
    resolved = profiles.resolve(cluster["spec"], ref["name"], profile["spec"], ref["options"],
                                cluster=cluster["metadata"]["name"])
    assert resolved.violations == []
    assert resolved.spec["worker"]["replicas"] == 4
    greedy = profiles.resolve(cluster["spec"], ref["name"], profile["spec"],
                              {"worker_memory": "32Gi", "workers": 12}, cluster="analysis")
    (text,) = [t for lang, t in BLOCKS if lang == "text"]
    assert profiles.summary(greedy.violations) == text.strip()


def test_the_namespace_block_names_its_default_with_the_operators_annotation():
    (namespace,) = of_kind("Namespace")
    choice = profiles.chosen(None, namespace, ANNOTATION_DEFAULT_PROFILE)
    assert choice is not None and choice.name == of_kind("DaskClusterProfile")[0]["metadata"]["name"]
