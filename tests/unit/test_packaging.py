"""The distribution's metadata, and what the distribution, the chart and the image say agrees.

The project has one version (operator/README.md, "Version"), written in pyproject.toml, the
chart's Chart.yaml (``version`` and ``appVersion``) and the Dockerfile's ``VERSION`` default; the
package's ``__version__`` and the Airflow provider's metadata repeat it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import dask_kube_jobs
from dask_kube_jobs.airflow_provider import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def dockerfile_version_default() -> str:
    (default,) = re.findall(r"^ARG VERSION=(\S+)$", (ROOT / "operator" / "Dockerfile").read_text(),
                            flags=re.MULTILINE)
    return default


def test_package_chart_and_image_carry_one_version() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "dask-kube-jobs" / "Chart.yaml").read_text())
    written = {
        "pyproject.toml": project()["version"],
        "Chart.yaml version": chart["version"],
        "Chart.yaml appVersion": chart["appVersion"],
        "operator/Dockerfile VERSION": dockerfile_version_default(),
        "dask_kube_jobs.__version__": dask_kube_jobs.__version__,
        "airflow provider versions[0]": get_provider_info()["versions"][0],
    }
    assert written == dict.fromkeys(written, project()["version"])


def test_the_version_is_plain_semver_so_helm_and_pip_read_the_same_string() -> None:
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", project()["version"])


# -- the distribution's metadata -------------------------------------------------------------

#: Tools for developing and testing this project, never for its users.
DEV_TOOLS = {"pytest", "pytest-asyncio", "pytest-timeout", "ruff", "import-linter",
             "helm-python-sdk"}
#: The extras that exist to run the tests: `test` (the README's command) and `test-tools` (what
#: the Airflow 2.11 CI leg adds to `airflow2`).
TEST_EXTRAS = {"test", "test-tools"}


def requirements(extra: str | None = None) -> list[Requirement]:
    p = project()
    return [Requirement(r) for r in (p["optional-dependencies"][extra] if extra
                                     else p["dependencies"])]


def closure(extra: str) -> set[str]:
    """Every distribution name an extra brings, following `dask-kube-jobs[...]` references."""
    names: set[str] = set()
    for req in requirements(extra):
        if canonicalize_name(req.name) == project()["name"]:
            for inner in req.extras:
                names |= closure(inner)
        else:
            names.add(canonicalize_name(req.name))
    return names


def test_test_and_lint_tools_are_only_in_the_test_extras() -> None:
    extras = project()["optional-dependencies"]
    for extra in set(extras) - TEST_EXTRAS:
        assert not closure(extra) & DEV_TOOLS, f"extra {extra!r} installs {closure(extra) & DEV_TOOLS}"
    assert closure("test") >= DEV_TOOLS  # the README's `pip install -e '.[test]'` brings them all
    # the Airflow 2.11 leg runs pytest with pyproject's settings (asyncio_mode, timeout)
    assert {"pytest", "pytest-asyncio", "pytest-timeout"} <= closure("test-tools")


def test_every_dependency_has_a_lower_bound() -> None:
    extras = project()["optional-dependencies"]
    for req in requirements() + [r for e in extras for r in requirements(e)]:
        if canonicalize_name(req.name) == project()["name"]:
            continue
        assert any(s.operator in (">=", "==", "~=", ">") for s in req.specifier), (
            f"{req} has no lower bound")


def test_the_license_file_is_the_bsd_3_clause_text_the_metadata_names() -> None:
    assert project()["license"] == "BSD-3-Clause"
    assert project()["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "the dask-kube-jobs developers" in text
    assert "Neither the name of the copyright holder" in text  # clause 3, what makes it 3-clause


def test_the_package_is_marked_typed_and_ships_the_marker() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dask_kube_jobs"]
    assert "py.typed" in package_data
    assert (ROOT / "dask_kube_jobs" / "py.typed").is_file()
    assert "Typing :: Typed" in project()["classifiers"]


def test_classifiers_and_project_urls() -> None:
    p = project()
    assert f"Programming Language :: Python :: {p['requires-python'].removeprefix('>=')}" in (
        p["classifiers"])
    assert not [c for c in p["classifiers"] if c.startswith("License ::")]  # PEP 639: the expression
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(p["urls"])
    chart = yaml.safe_load((ROOT / "charts" / "dask-kube-jobs" / "Chart.yaml").read_text())
    assert p["urls"]["Source"] == chart["home"]


# -- kr8s: public names only -----------------------------------------------------------------

def test_no_module_imports_a_private_kr8s_module() -> None:
    private = re.compile(r"^\s*(from|import)\s+kr8s(\.\w+)*\._", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "dask_kube_jobs").rglob("*.py")
                 if private.search(path.read_text())]
    assert offenders == []


def test_kr8s_finds_our_typed_classes_sync_and_async() -> None:
    import kr8s.asyncio.objects
    import kr8s.objects

    from dask_kube_jobs import resources

    for kind in ("DaskCluster", "DaskWorkerGroup", "DaskJob", "DaskAutoscaler"):
        sync, async_ = getattr(resources, kind), getattr(resources, f"Async{kind}")
        assert kr8s.objects.get_class(kind, resources.API_VERSION) is sync
        assert kr8s.asyncio.objects.get_class(kind, resources.API_VERSION) is async_
        assert issubclass(sync, async_) and not sync._asyncio and async_._asyncio
