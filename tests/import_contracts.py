"""Two import-linter contract types that the built-in ones cannot express (see pyproject.toml).

* ``acyclic_modules``: no import cycle between any modules of a package, a
  package's ``__init__`` included. (The built-in ``acyclic_siblings`` compares
  siblings only, so a submodule importing its own package's ``__init__``, which
  imports the submodule back, passes it.)
* ``forbidden_submodules``: modules that must not import given submodules of an
  external package, e.g. ``opentelemetry.sdk`` while ``opentelemetry.trace`` is
  fine. (The graph holds an external package as one node, and the built-in
  ``forbidden`` accepts only whole external packages.) It reads the import
  statements the graph recorded.
"""

from __future__ import annotations

import re
from typing import Any

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

_IMPORTED = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w, ()]+)|import\s+([\w.]+))")


def _cycles(graph: ImportGraph, modules: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def edges(module: str) -> list[str]:
        return sorted(m for m in graph.find_modules_directly_imported_by(module) if m in modules)

    for start in sorted(modules):  # iterative Tarjan: the graph may be deep
        if start in index:
            continue
        work = [(start, iter(edges(start)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges(child))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in edges(module):
                    found.append(sorted(component))
    return found


class AcyclicModulesContract(Contract):
    """No import cycle between the modules of ``package`` (its ``__init__`` modules included)."""

    type_name = "acyclic_modules"

    package = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        package: str = self.package  # type: ignore[assignment]
        modules = {package, *graph.find_descendants(package)}
        cycles = _cycles(graph, modules)
        chains = []
        for component in cycles:
            first, members = component[0], set(component)
            nearest = next(m for m in sorted(graph.find_modules_directly_imported_by(first))
                           if m in members)
            back = graph.find_shortest_chain(importer=nearest, imported=first) or (nearest,)
            chains.append([first, *back])
        return ContractCheck(kept=not cycles, metadata={"chains": chains})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for chain in check.metadata["chains"]:
            output.print_error(" -> ".join(chain), bold=True)
            output.new_line()


class ForbiddenSubmodulesContract(Contract):
    """``source_modules`` (and their descendants) never import any of ``forbidden``."""

    type_name = "forbidden_submodules"

    source_modules = fields.ListField(subfield=fields.StringField())
    forbidden = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        forbidden: list[str] = list(self.forbidden)  # type: ignore[call-overload]
        roots = {name.split(".")[0] for name in forbidden}
        violations: list[dict[str, Any]] = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            for importer in sorted({source, *graph.find_descendants(source)}):
                for imported in graph.find_modules_directly_imported_by(importer):
                    if imported not in roots:
                        continue
                    for detail in graph.get_import_details(importer=importer,
                                                           imported=imported):
                        names = _imported_names(detail["line_contents"])
                        if any(n == f or n.startswith(f + ".") for n in names for f in forbidden):
                            violations.append({"importer": importer, **detail})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["violations"]:
            output.print_error(f"{v['importer']} (l.{v['line_number']}): {v['line_contents']}")
        output.new_line()


def _imported_names(line: str) -> list[str]:
    """``from a.b import c, d`` -> a.b, a.b.c, a.b.d; ``import a.b`` -> a.b."""
    match = _IMPORTED.match(line)
    if match is None:
        return []
    if match[3]:
        return [match[3]]
    base = match[1]
    names = [n.strip() for n in match[2].replace("(", "").replace(")", "").split(",")]
    return [base, *(f"{base}.{n}" for n in names if n)]
