"""Image references as a real kubelet reads them: the docker reference grammar.

The API server accepts almost any image string; it is the kubelet that parses it (to add the
default ``:latest`` tag) and, when it cannot, leaves the container waiting with reason
``InvalidImageName`` and the Pod Pending. This kubelet runs no images, but it refuses the same
references with the same words, so a manifest that would never start on a cluster does not run
here either. The grammar and messages are those of ``github.com/distribution/reference``
(``ParseNormalizedNamed``), as the kubelet's ``applyDefaultImageTag`` reports them.
"""

from __future__ import annotations

import re

_ALNUM = "[a-z0-9]+"
_SEPARATOR = "(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = f"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(f"({_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
_HEX64 = re.compile("[a-f0-9]{64}")
NAME_TOTAL_LENGTH_MAX = 255


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = "docker.io", name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def _parse(ref: str) -> str | None:
    match = _REFERENCE.fullmatch(ref)
    if match is None:
        if not ref:
            return "repository name must have at least one component"
        if _REFERENCE.fullmatch(ref.lower()):
            return "repository name must be lowercase"
        return "invalid reference format"
    if len(match.group(1)) > NAME_TOTAL_LENGTH_MAX:
        return f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
    return None


def reference_error(image: str) -> str | None:
    """Why ``ParseNormalizedNamed`` refuses ``image``, or None if it parses."""
    if _HEX64.fullmatch(image):
        return (f"invalid repository name ({image}), cannot specify 64-byte hexadecimal "
                "strings")
    domain, remainder = _split_domain(image)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return f"invalid reference format: repository name ({remote}) must be lowercase"
    return _parse(f"{domain}/{remainder}")


def invalid_image_message(image: str) -> str | None:
    """The waiting message of a container whose image does not parse (None if it does)."""
    error = reference_error(image)
    if error is None:
        return None
    return (f'Failed to apply default image tag "{image}": couldn\'t parse image name '
            f'"{image}": {error}')
