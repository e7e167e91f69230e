"""Image references parse as the kubelet parses them (distribution/reference)."""

from __future__ import annotations

import pytest

from dask_kube_jobs.local.kubelet.imageref import invalid_image_message, reference_error


@pytest.mark.parametrize("image", [
    "busybox", "python:3.12-slim", "ghcr.io/dask/dask:2024.8.0", "localhost:5000/team/app",
    "registry.example.com:5000/a/b_c__d-e:v1.2-rc", "busybox@sha256:" + "a" * 64,
    "[::1]:5000/app:v1"])
def test_references_that_parse(image: str) -> None:
    assert reference_error(image) is None


@pytest.mark.parametrize("image,error", [
    ("BUSYBOX", "invalid reference format: repository name (library/BUSYBOX) must be lowercase"),
    ("ghcr.io/Dask/dask", "invalid reference format: repository name (Dask/dask) must be "
     "lowercase"),
    ("bad image", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal "
     "strings"),
    ("x/" + "a" * 260, "repository name must not be more than 255 characters"),
])
def test_references_that_do_not(image: str, error: str) -> None:
    assert reference_error(image) == error


def test_the_waiting_message_is_the_kubelets() -> None:
    assert invalid_image_message("bad image") == (
        'Failed to apply default image tag "bad image": couldn\'t parse image name "bad image": '
        "invalid reference format")
    assert invalid_image_message("busybox") is None
