"""Loading operator plugins from the ``dask_operator_plugin`` entry-point group.

The group is upstream's (the Dask Kubernetes Operator's), so a plugin written for that operator
loads here too. The same name means upstream's own distribution registers a plugin in it: its
``noop`` plugin lives inside upstream's controller package, and importing it imports upstream's
whole controller, whose ``@kopf.on...`` decorators would add a second controller (and its
start-up handlers, which change kopf's settings) to this operator's registry. Two controllers
acting on the same DaskClusters is the worst thing an installed package could do to us.

So each entry point is imported with kopf's default registry swapped for a quarantine one, and
only the handlers defined in the entry point's own module, or in modules below it, are moved to
the operator's registry. Anything else the import registered is a side effect of the plugin's
imports: it is dropped, and the operator says so at ERROR, naming the entry point, the
distribution that declared it and the modules the dropped handlers came from. A plugin that
fails to import still stops the start-up (``PluginLoadError``): an operator silently running
without a policy its administrator installed is worse than none.

kopf has no public API to move handlers between registries; this uses the registries' private
per-kind attributes (``_REGISTRY_PARTS``), which ``tests/unit/test_operator_plugins.py`` pins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import kopf

log = logging.getLogger("dask_kube_jobs.operator")

GROUP = "dask_operator_plugin"

# The per-kind handler registries of kopf.OperatorRegistry (kopf 1.37 to 1.45 at least).
_REGISTRY_PARTS = ("_activities", "_indexing", "_watching", "_spawning", "_changing", "_webhooks")


class PluginLoadError(SystemExit):
    """A plugin failed to import; the operator must not start without it."""


@dataclass
class LoadedPlugin:
    name: str
    value: str
    distribution: str
    handlers: list[str] = field(default_factory=list)  # ids of the handlers kept
    foreign: list[str] = field(default_factory=list)  # "<module>.<function>" of those dropped


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def _owns(module: str, handler_module: str) -> bool:
    return handler_module == module or handler_module.startswith(module + ".")


def _handler_origin(handler: Any) -> tuple[str, str]:
    fn = handler.fn
    return getattr(fn, "__module__", None) or "?", getattr(fn, "__qualname__", None) or repr(fn)


def load_one(ep: EntryPoint, target: kopf.OperatorRegistry) -> LoadedPlugin:
    """Import ``ep`` into a quarantine registry; move its own handlers into ``target``."""
    quarantine = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(quarantine)
    try:
        ep.load()
    except Exception as exc:
        message = (f"dask-kube-jobs operator: plugin {ep.name!r} ({ep.value}) failed to "
                   f"load: {exc!r}. Fix or uninstall it.")
        # logged too, with its traceback, so a JSON log pipeline records why the Pod crashed
        log.critical(message, exc_info=exc)
        raise PluginLoadError(message) from exc
    finally:
        kopf.set_default_registry(previous)
    plugin = LoadedPlugin(ep.name, ep.value, _distribution(ep))
    for part in _REGISTRY_PARTS:
        for handler in getattr(quarantine, part).get_all_handlers():
            module, qualname = _handler_origin(handler)
            if _owns(ep.module, module):
                getattr(target, part).append(handler)
                plugin.handlers.append(str(handler.id))
            else:
                plugin.foreign.append(f"{module}.{qualname}")
    if plugin.foreign:
        modules = sorted({f.rsplit(".", 1)[0] for f in plugin.foreign})
        log.error(
            "plugin %r (entry point %r of %s) registered %d kopf handler(s) outside its own "
            "module %r, from %s: refused, this operator runs only its own controller and the "
            "plugin's own handlers. This happens when a plugin's import brings in another "
            "controller (dask-kubernetes' 'noop' plugin imports the upstream operator's); "
            "define a plugin's handlers in the module its entry point names or below it. "
            "Refused: %s", ep.name, ep.value, plugin.distribution, len(plugin.foreign),
            ep.module, ", ".join(modules), ", ".join(plugin.foreign))
    return plugin


def load_plugins(eps: Iterable[EntryPoint] | None = None,
                 target: kopf.OperatorRegistry | None = None) -> list[LoadedPlugin]:
    """Load every plugin of the group into ``target`` (kopf's default registry)."""
    target = target if target is not None else kopf.get_default_registry()
    eps = entry_points(group=GROUP) if eps is None else eps
    return [load_one(ep, target) for ep in eps]
