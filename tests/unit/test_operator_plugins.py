"""Plugin loading: a plugin's own handlers are kept, handlers its imports bring are refused.

The distribution below has upstream dask-kubernetes' shape: its entry point names a ``noop``
plugin inside a controller package whose ``__init__`` imports the whole controller, so loading
the plugin registers the controller's handlers too (the bug where our operator ran upstream's
controller beside its own).
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import Distribution
from pathlib import Path

import kopf
import pytest

from dask_kube_jobs.operator import plugins


def write_upstream_like(site: Path, package: str = "upstreamish") -> None:
    files = {
        f"{package}/__init__.py": "from . import controller\n",
        f"{package}/controller/__init__.py": "from .controller import *  # noqa\n",
        f"{package}/controller/controller.py": """
            import kopf

            @kopf.on.startup()
            def upstream_startup(settings, **_):
                settings.persistence.finalizer = "upstream/finalizer"

            @kopf.on.create("kubernetes.dask.org", "v1", "daskclusters")
            def upstream_cluster_create(patch, **_):
                patch.metadata.labels["controller"] = "upstream"

            @kopf.timer("kubernetes.dask.org", "v1", "daskautoscalers", interval=5)
            def upstream_autoscale(**_):
                pass
        """,
        f"{package}/controller/plugins/__init__.py": "",
        f"{package}/controller/plugins/noop/__init__.py": "from .noop import *  # noqa\n",
        f"{package}/controller/plugins/noop/noop.py": """
            import logging

            import kopf

            @kopf.on.startup()
            def noop_startup(**_):
                logging.getLogger("noop").info("noop plugin running")
        """,
    }
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(textwrap.dedent(text))
    info = site / f"{package}-2026.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 2026.3.0\n")
    (info / "entry_points.txt").write_text(
        f"[dask_operator_plugin]\nnoop = {package}.controller.plugins.noop\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        if name.startswith(("upstreamish", "broken_plugin")):
            del sys.modules[name]


def handler_names(registry: kopf.OperatorRegistry) -> set[str]:
    return {h.fn.__qualname__ for part in plugins._REGISTRY_PARTS
            for h in getattr(registry, part).get_all_handlers()}


def test_a_plugin_keeps_its_own_handlers_and_loses_its_imports(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_upstream_like(site)
    [ep] = Distribution.at(site / "upstreamish-2026.3.0.dist-info").entry_points
    target = kopf.OperatorRegistry()
    default_before = handler_names(kopf.get_default_registry())
    with caplog.at_level(logging.ERROR, "dask_kube_jobs.operator"):
        [loaded] = plugins.load_plugins([ep], target)
    assert handler_names(target) == {"noop_startup"}
    assert sorted(f.rsplit(".", 1)[1] for f in loaded.foreign) == [
        "upstream_autoscale", "upstream_cluster_create", "upstream_startup"]
    # nothing leaked into kopf's default registry while the plugin was imported
    assert handler_names(kopf.get_default_registry()) == default_before
    [record] = caplog.records
    message = record.getMessage()
    assert "plugin 'noop'" in message and "upstreamish 2026.3.0" in message
    assert "upstreamish.controller.controller" in message and "refused" in message


def test_a_plugin_that_fails_to_import_stops_the_start(site: Path) -> None:
    (site / "broken_plugin.py").write_text("raise RuntimeError('misconfigured policy')\n")
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dask_operator_plugin]\nbroken = broken_plugin\n")
    [ep] = Distribution.at(info).entry_points
    with pytest.raises(plugins.PluginLoadError, match="misconfigured policy"):
        plugins.load_plugins([ep], kopf.OperatorRegistry())


def test_kopf_registry_parts_are_where_the_loader_looks() -> None:
    registry = kopf.OperatorRegistry()
    for part in plugins._REGISTRY_PARTS:
        assert hasattr(getattr(registry, part), "get_all_handlers")
