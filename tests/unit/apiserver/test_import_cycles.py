"""The API server's modules import each other in one direction only.

A cycle (even through a function-level import) means two modules are really one, or that a
helper sits in the wrong one; it also makes import order matter. Imports made only for type
checking do not count: they never run.
"""

from __future__ import annotations

import grimp

PACKAGE = "dask_kube_jobs.local.apiserver"


def _cycles(graph: grimp.ImportGraph, package: str) -> list[tuple[str, ...]]:
    """One chain per module pair that imports each other (directly or through others)."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    found = []
    for importer in modules:
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported not in modules or imported == importer:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                found.append((importer, *back))
    return found


def test_no_import_cycles_in_the_api_server():
    graph = grimp.build_graph("dask_kube_jobs", exclude_type_checking_imports=True,
                              cache_dir=None)
    assert _cycles(graph, PACKAGE) == []


def test_a_function_level_import_back_is_a_cycle():
    # The check must see imports inside functions, as the structural <-> crd_validation cycle
    # was one.
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b", line_number=1, line_contents="import")
    graph.add_import(importer="pkg.b", imported="pkg.c", line_number=9,
                     line_contents="    from . import c")
    graph.add_import(importer="pkg.c", imported="pkg.a", line_number=2, line_contents="import")
    assert _cycles(graph, "pkg") == [("pkg.a", "pkg.b", "pkg.c", "pkg.a"),
                                     ("pkg.b", "pkg.c", "pkg.a", "pkg.b"),
                                     ("pkg.c", "pkg.a", "pkg.b", "pkg.c")]
