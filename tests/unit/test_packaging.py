"""What the distribution, the chart and the image say about themselves agrees.

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
