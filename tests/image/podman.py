"""Build and run the operator image with podman, on a machine with no Docker daemon and no pull.

CI machines here cannot pull ``python:3.11-slim``, run no Docker daemon, and refuse crun and
podman's default ulimits. So the image is built the way ``operator/README.md`` describes for
such machines:

* a stand-in base made by ``mmdebstrap`` (Debian bookworm with Python 3.11, pip and venv, the
  EXTERNALLY-MANAGED marker removed so that pip installs as it does on python:3.11-slim) and
  tagged with ``podman import``; the tarball is cached outside the repository, so only the
  first run on a machine pays for it;
* ``podman build --network host`` with this machine's CA bundle and pip settings bind-mounted
  read-only: pip inside the build reaches the index as pip on the host does, and nothing of the
  machine is baked into the image;
* podman configured by a ``containers.conf`` of our own (``CONTAINERS_CONF``): runc, cgroupfs,
  and nofile/nproc ulimits no higher than this process's own hard limits.

Needs the Debian packages mmdebstrap, podman and runc (``.ci/run`` installs them).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "operator" / "Dockerfile"
IGNOREFILE = ROOT / "operator" / "Dockerfile.dockerignore"

#: Where the stand-in base's tarball is kept between runs (outside the repository).
CACHE = Path(os.environ.get("DKJ_IMAGE_CACHE",
                            Path.home() / ".cache" / "dask-kube-jobs-image"))

#: What stands in for python:3.11-slim: bookworm's Python is 3.11, the project's floor.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3",
                 "ca-certificates")
BASE_HOOK = 'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
#: mmdebstrap's own merged-/usr set-up: without it bookworm pulls usrmerge, and with it perl.
BASE_HOOK_DIR = "/usr/share/mmdebstrap/hooks/merged-usr"

#: The host's files pip needs inside the build, mounted read-only at the same paths.
HOST_PIP_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")

REQUIRED_TOOLS = ("mmdebstrap", "podman", "runc")

#: runc refuses an nproc limit equal to the hard one here; a few thousand is plenty.
NPROC_LIMIT = 4096


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def _recipe_id() -> str:
    """Short hash of the base's recipe: a changed recipe gets a new tarball and tag."""
    recipe = "\n".join([BASE_SUITE, *BASE_PACKAGES, BASE_HOOK, BASE_HOOK_DIR])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def write_containers_conf(path: Path) -> Path:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC_LIMIT if nproc_hard == resource.RLIM_INFINITY else min(nproc_hard // 2,
                                                                         NPROC_LIMIT)
    if nofile == resource.RLIM_INFINITY:
        nofile = 65536
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n')
    return path


@dataclass
class Podman:
    """The podman CLI under our containers.conf; a failed command raises with its stderr."""

    conf: Path

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CONTAINERS_CONF": str(self.conf)})
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def image_exists(self, tag: str) -> bool:
        return self("image", "exists", tag, check=False).returncode == 0


def stand_in_base(podman: Podman) -> str:
    """The tag of the stand-in base, imported from the cached tarball (made on first use)."""
    recipe = _recipe_id()
    tag = f"localhost/dkj-stand-in-python:3.11-{recipe}"
    if podman.image_exists(tag):
        return tag
    tarball = CACHE / f"stand-in-{BASE_SUITE}-{recipe}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        proc = subprocess.run(
            ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             f"--hook-dir={BASE_HOOK_DIR}", f"--customize-hook={BASE_HOOK}", BASE_SUITE,
             str(partial)],
            capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            raise AssertionError(f"mmdebstrap failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        partial.rename(tarball)  # only a complete tarball is ever cached
    podman("import", str(tarball), tag, timeout=300)
    return tag


def build_operator_image(podman: Podman, base: str, tag: str, version: str) -> str:
    """``podman build`` of operator/Dockerfile from the repository, on ``base``; returns ``tag``."""
    mounts = [f"--volume={f}:{f}:ro" for f in HOST_PIP_FILES if Path(f).exists()]
    podman("build", "--network=host", f"--file={DOCKERFILE}", f"--ignorefile={IGNOREFILE}",
           f"--build-arg=PYTHON_IMAGE={base}", f"--build-arg=VERSION={version}",
           *mounts, f"--tag={tag}", str(ROOT), timeout=900)
    return tag
