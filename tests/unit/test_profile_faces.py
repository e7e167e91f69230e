"""Cluster profiles on the client side, without a cluster: the ``spec.profile`` the builders,
the CLI and KubeCluster write, the manifest check, and the early check of options against a
profile (the words a refusal uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dask_kube_jobs import (
    ClusterProfile,
    KubeCluster,
    ProfileOptionError,
    SpecError,
    cli,
    make_cluster_spec,
    make_job_spec,
)
from dask_kube_jobs._cli_jobs import job_manifest
from dask_kube_jobs._cli_output import profile_text, profiles_table
from dask_kube_jobs._kubecluster._options import profile_choices
from dask_kube_jobs.asyncio import check_job_manifest
from dask_kube_jobs.profile_spec import parse_option_pairs, profile_block, with_profile

from .test_spec import assert_accepted

STANDARD = {
    "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
    "metadata": {"name": "standard"},
    "spec": {
        "description": "2-16 GiB workers",
        "locked": ["nodeSelector"],
        "options": [
            {"name": "worker_memory", "description": "Memory per worker",
             "target": "worker.memory", "quantity": {"default": "4Gi", "min": "2Gi",
                                                     "max": "16Gi"}},
            {"name": "image", "target": "image",
             "choice": {"default": "a:1", "choices": ["a:1", "a:2"]}},
            {"name": "workers", "target": "worker.replicas",
             "integer": {"default": 2, "min": 1, "max": 20}},
        ],
    },
}


def profile() -> ClusterProfile:
    return ClusterProfile.from_object(STANDARD)


# ---------------------------------------------------------------- the builders


def test_with_a_profile_a_cluster_carries_only_what_was_given() -> None:
    spec = make_cluster_spec("c", profile="standard", profile_options={"workers": 3})["spec"]
    assert spec == {"profile": {"name": "standard", "options": {"workers": 3}}}
    spec = make_cluster_spec("c", profile="standard", n_workers=2, idle_timeout=60)["spec"]
    assert spec == {"profile": {"name": "standard"}, "idleTimeout": 60,
                    "worker": {"replicas": 2}}


def test_with_a_profile_given_resources_build_the_containers_without_an_image() -> None:
    """An image written by default would override the profile's (or be refused by a lock)."""
    resources = {"limits": {"cpu": "1"}}
    spec = make_cluster_spec("c", profile="standard", resources=resources)["spec"]
    for part in ("worker", "scheduler"):
        [container] = spec[part]["spec"]["containers"]
        assert "image" not in container
        assert container["resources"] == resources
    assert "replicas" not in spec["worker"]
    with_image = make_cluster_spec("c", profile="standard", image="x:1")["spec"]
    assert with_image["worker"]["spec"]["containers"][0]["image"] == "x:1"


def test_without_a_profile_the_defaults_are_unchanged() -> None:
    assert make_cluster_spec("c") == make_cluster_spec(
        "c", image="ghcr.io/dask/dask:latest", n_workers=3, worker_command="dask worker",
        scheduler_service_type="ClusterIP", idle_timeout=0, jupyter=False)
    job = make_job_spec("j", command="true")
    assert job["spec"]["cluster"]["spec"]["worker"]["replicas"] == 3
    assert "profile" not in job["spec"]


def test_a_job_names_its_profile_beside_its_cluster() -> None:
    job = make_job_spec("j", command="true", profile="standard",
                        profile_options={"worker_memory": "8Gi"})
    assert job["spec"]["profile"] == {"name": "standard", "options": {"worker_memory": "8Gi"}}
    assert "cluster" not in job["spec"]  # the profile fills all of it
    assert job["spec"]["job"]["spec"]["containers"][0]["image"] == "ghcr.io/dask/dask:latest"
    check_job_manifest(job)
    sized = make_job_spec("j", command="true", profile="standard", n_workers=4,
                          cluster_metadata={"labels": {"team": "a"}})
    assert sized["spec"]["cluster"] == {"spec": {"worker": {"replicas": 4}},
                                        "metadata": {"labels": {"team": "a"}}}
    check_job_manifest(sized)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"profile_options": {"x": 1}}, "profile_options"),
    ({"profile": "Bad_Name"}, "profile"),
    ({"profile": "p", "profile_options": {"Memory": "1Gi"}}, "profile_options"),
    ({"profile": "p", "profile_options": {"m": 1.5}}, "profile_options"),
    ({"profile": "p", "cluster_ref": "shared"}, "profile"),
])
def test_builder_mistakes_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(SpecError) as err:
        make_job_spec("j", command="true", **kwargs)
    assert err.value.argument == argument


def test_the_manifest_check_needs_a_cluster_only_without_a_profile() -> None:
    job = make_job_spec("j", command="true")
    del job["spec"]["cluster"]
    with pytest.raises(SpecError, match="spec.profile to have a profile fill it"):
        check_job_manifest(job)
    check_job_manifest(with_profile(job, "standard"))
    bad = with_profile(make_job_spec("j", command="true"), "standard")
    bad["spec"]["profile"]["options"] = {"x": [1]}
    with pytest.raises(SpecError, match="spec.profile"):
        check_job_manifest(bad)
    ref = make_job_spec("j", command="true", cluster_ref="shared")
    ref["spec"]["profile"] = {"name": "standard"}
    with pytest.raises(SpecError, match="with spec.clusterRef the job makes none"):
        check_job_manifest(ref)


def test_with_profile_keeps_the_same_profiles_options_only() -> None:
    manifest = {"spec": {"profile": {"name": "a", "options": {"x": 1, "y": 2}}}}
    assert with_profile(manifest, "a", {"y": 3})["spec"]["profile"] == \
        {"name": "a", "options": {"x": 1, "y": 3}}
    assert with_profile(manifest, "b", {"z": 1})["spec"]["profile"] == \
        {"name": "b", "options": {"z": 1}}
    assert manifest["spec"]["profile"]["options"] == {"x": 1, "y": 2}  # a copy was changed


def test_option_pairs() -> None:
    assert parse_option_pairs(["a=8Gi", "b=3", "c=x=y", "d="]) == \
        {"a": "8Gi", "b": 3, "c": "x=y", "d": ""}
    with pytest.raises(ProfileOptionError, match="KEY=VALUE"):
        parse_option_pairs(["novalue"])
    assert profile_block("p", {}) == {"name": "p"}


@pytest.mark.parametrize("manifest", [
    make_cluster_spec("c", profile="standard", profile_options={"worker_memory": "8Gi"}),
    make_cluster_spec("c", profile="standard", n_workers=2, resources={"limits": {"cpu": "1"}}),
    make_job_spec("j", command="true", profile="standard", profile_options={"workers": 3}),
    make_job_spec("j", command="true", profile="standard", n_workers=2, env={"A": "1"}),
], ids=["cluster-options", "cluster-partial", "job-options", "job-partial"])
def test_profile_manifests_are_valid_for_the_crds_and_nothing_is_pruned(manifest: dict) -> None:
    assert_accepted(manifest)


# ---------------------------------------------------------------- the early check


def test_a_profiles_options_read_as_gateway_lists_them() -> None:
    p = profile()
    assert [(o.name, o.kind, o.default, o.allowed()) for o in p.options] == [
        ("worker_memory", "quantity", "4Gi", "2Gi to 16Gi"),
        ("image", "choice", "a:1", "one of a:1, a:2"),
        ("workers", "integer", 2, "1 to 20")]
    assert p.as_dict()["options"][2] == {"name": "workers", "description": "",
                                         "target": "worker.replicas", "kind": "integer",
                                         "default": 2, "min": 1, "max": 20}


@pytest.mark.parametrize("options", [
    {}, {"worker_memory": "16Gi"}, {"worker_memory": "2048Mi"}, {"image": "a:2"},
    {"workers": 20}, {"workers": "1"},
])
def test_options_within_the_profile_pass(options: dict) -> None:
    profile().check_options(options)


@pytest.mark.parametrize(("options", "words"), [
    ({"worker_memory": "64Gi"}, "option worker_memory='64Gi' is out of range; allowed: 2Gi to 16Gi"),
    ({"worker_memory": "1Gi"}, "out of range; allowed: 2Gi to 16Gi"),
    ({"worker_memory": "lots"}, "is not a quantity"),
    ({"image": "evil:1"}, "option image='evil:1' is not a choice; allowed: one of a:1, a:2"),
    ({"workers": 0}, "option workers=0 is out of range; allowed: 1 to 20"),
    ({"workers": "many"}, "is not a whole number"),
    ({"worker_cpu": "2"}, "has no option 'worker_cpu' (it offers: worker_memory, image, workers)"),
])
def test_a_refused_option_names_the_option_the_value_the_range_and_the_profile(
        options: dict, words: str) -> None:
    with pytest.raises(ProfileOptionError) as err:
        profile().check_options(options)
    assert words in str(err.value)
    assert "profile 'standard'" in str(err.value)
    assert err.value.profile == "standard"
    assert err.value.option == next(iter(options))
    assert "dask-kube-jobs profiles standard" in err.value.hint


# ---------------------------------------------------------------- KubeCluster


def test_kubecluster_keywords_are_profile_options_only_with_a_profile() -> None:
    assert profile_choices("standard", {"workers": 2}, {"worker_memory": "8Gi"}) == \
        {"workers": 2, "worker_memory": "8Gi"}
    assert profile_choices("standard", None, {}) is None
    with pytest.raises(TypeError, match="unexpected keyword argument 'worker_memory'"):
        KubeCluster(name="c", worker_memory="8Gi")
    with pytest.raises(ValueError, match="profile_options"):
        KubeCluster(name="c", profile_options={"workers": 2})
    with pytest.raises(SpecError, match="profile_options"):  # before any connection
        KubeCluster(name="c", profile="standard", worker_memory=[1])


# ---------------------------------------------------------------- the CLI


def test_cli_profile_and_options_build_spec_profile(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gen", "job", "--name", "j", "--profile", "standard", "--option",
            "worker_memory=8Gi", "--option", "workers=3", "--", "python", "-c", "1"]
    assert cli.main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == make_job_spec("j", command=["python", "-c", "1"], profile="standard",
                                    profile_options={"worker_memory": "8Gi", "workers": 3})


def test_cli_profile_overrides_a_files_profile(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    job = make_job_spec("j", command="true", profile="small", profile_options={"workers": 1})
    path.write_text(yaml.safe_dump(job))
    parser = cli.build_parser()
    args = parser.parse_args(["run", str(path), "--option", "workers=2", "--workers", "5"])
    manifest = job_manifest(args)
    assert manifest["spec"]["profile"] == {"name": "small", "options": {"workers": 2}}
    assert manifest["spec"]["cluster"] == {"spec": {"worker": {"replicas": 5}}}
    args = parser.parse_args(["run", str(path), "--profile", "standard"])
    assert job_manifest(args)["spec"]["profile"] == {"name": "standard"}


def test_cli_option_without_a_profile_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gen", "job", "--option", "workers=3", "--", "python", "-c", "1"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.splitlines()[0] == \
        "error: --option: sets an option of a profile; name it with --profile NAME"


def test_profiles_text_output() -> None:
    p = profile()
    assert profiles_table([p]).splitlines() == [
        "NAME       OPTIONS                       DESCRIPTION",
        "standard   worker_memory,image,workers   2-16 GiB workers"]
    text = profile_text(p)
    assert "Locked:      nodeSelector" in text
    assert "  image           image             a:1       one of a:1, a:2   -" in text
    row = next(line for line in text.splitlines() if "worker_memory" in line).split()
    assert row == ["worker_memory", "worker.memory", "4Gi", "2Gi", "to", "16Gi", "Memory",
                   "per", "worker"]


def test_the_operator_fills_the_image_of_containers_the_builders_wrote_without_one() -> None:
    """``KubeCluster(profile=..., worker_command=...)`` writes the standard containers without
    an image; the operator's resolution gives them the profile's (or an image option's)."""
    from dask_kube_jobs.operator.profiles import resolve

    spec = make_cluster_spec("c", profile="p", worker_command="dask worker --nthreads 1")["spec"]
    done = resolve(spec, "p", {"image": "prof:1", "locked": ["image"]}, None, cluster="c")
    assert done.violations == []
    assert {done.spec[c]["spec"]["containers"][0]["image"] for c in ("worker", "scheduler")} == \
        {"prof:1"}
    chosen = resolve(spec, "p", STANDARD["spec"], {"image": "a:2"}, cluster="c")
    assert chosen.violations == []
    assert chosen.spec["worker"]["spec"]["containers"][0]["image"] == "a:2"
    assert resolve(spec, "p", {}, None, cluster="c").spec["worker"]["spec"]["containers"][0][
        "image"] == "ghcr.io/dask/dask:latest"


def test_a_403_on_profiles_says_which_rbac_is_missing() -> None:
    from dask_kube_jobs import kube
    from dask_kube_jobs.jobs._profile import _explained

    forbidden = kube.api_error(403, {"kind": "Status", "reason": "Forbidden", "message":
                                     'daskclusterprofiles.kubernetes.dask.org is forbidden: '
                                     'User "alice" cannot list resource "daskclusterprofiles"'})
    error = _explained(forbidden, "cannot list DaskClusterProfiles")
    assert str(error).startswith("cannot list DaskClusterProfiles: daskclusterprofiles")
    assert "get and list on daskclusterprofiles" in error.hint and "ClusterRole" in error.hint
    missing = _explained(kube.api_error(404, {"reason": "NotFound"}), "cannot read x")
    assert "no DaskClusterProfile resource" in str(missing)
