"""operator/Dockerfile, checked statically: slim, pinned, non-root (tests/image builds and runs it)."""

from __future__ import annotations

import re
import shlex
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .chart import CHART_DIR, ROOT

DOCKERFILE = ROOT / "operator" / "Dockerfile"
CONSTRAINTS = ROOT / "operator" / "constraints.txt"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def build_args() -> dict[str, str]:
    return dict(rest.split("=", 1) for op, rest in instructions() if op == "ARG" and "=" in rest)


def test_every_stage_is_python_3_11_slim_with_no_latest_tag() -> None:
    args = build_args()
    bases = [rest.split()[0] for op, rest in instructions() if op == "FROM"]
    assert len(bases) == 2
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert image == "python:3.11-slim", image
        assert not image.endswith(":latest") and ":" in image


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for op, rest in instructions() if op == "USER"]
    assert users, "no USER instruction: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_the_package_is_installed_with_its_operator_extra() -> None:
    runs = " ".join(rest for op, rest in instructions() if op == "RUN")
    assert re.search(r"pip install [^;&]*dask_kube_jobs[^;&]*\[operator\]", runs), runs


def test_the_default_command_is_the_one_the_chart_runs() -> None:
    (cmd,) = [rest for op, rest in instructions() if op == "CMD"]
    argv = yaml.safe_load(cmd)  # exec form: a JSON list
    assert argv[:3] == ["python", "-m", "dask_kube_jobs.operator"]
    assert not any(op == "ENTRYPOINT" for op, _ in instructions())  # the chart's command wins
    assert shlex.join(argv)  # well-formed


def test_the_build_guide_names_the_chart_image() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    guide = (ROOT / "operator" / "README.md").read_text()
    assert values["image"]["repository"] in guide
    assert "latest" not in values["image"]["tag"]


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            out[canonicalize_name(name)] = version
    return out


def test_the_install_uses_the_committed_constraints_which_the_build_context_holds() -> None:
    runs = " ".join(rest for op, rest in instructions() if op == "RUN")
    assert re.search(r"pip install --constraint (\S+)", runs), runs
    copies = [rest.split() for op, rest in instructions() if op == "COPY"]
    assert any(src == "operator/constraints.txt" for src, *_ in copies)
    ignore = (ROOT / "operator" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!operator/constraints.txt" in ignore  # else the context filter drops it


def test_the_constraints_pin_every_requirement_of_the_operator_extra_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    assert "dask-kube-jobs" not in pinned  # the wheel being installed is never constrained
    for spec in project["dependencies"] + project["optional-dependencies"]["operator"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in operator/constraints.txt: regenerate it"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"operator/constraints.txt pins {req.name}=={pinned[name]}, outside {spec!r}: "
            "regenerate it (operator/README.md)")
