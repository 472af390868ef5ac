"""The layering rules, checked on the source (ast; no imports, fast).

* No import cycle between plane's packages (plane.core, plane.query, ..., the top-level
  modules and the `plane` package itself). Runtime imports count, function-level ones
  included; imports under ``if TYPE_CHECKING:`` do not.
* actors/, jobs/ and configs/ import no private module of plane; plane never imports them.
* No access to a private attribute of a Dataset (``ds._x``, ``dataset._x``, ``self._ds._x``,
  ``view._dataset._x``: an attribute chain whose base is named ds/dataset/_ds/_dataset)
  outside plane/dataset and plane/core.
* Store key prefixes are spelled only in plane/core/_layout.py.

What breaks a rule today is listed in an allowlist below. A list may only shrink: the test
fails on anything new, and also on an entry that no longer occurs (delete it then).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANE = ROOT / "plane"
CLIENTS = ("actors", "jobs", "configs")

#: cycles of the package import graph, each from its smallest name (see `_cycles`)
KNOWN_CYCLES: set[tuple[str, ...]] = set()

#: (module, attribute) of private Dataset attributes used outside plane/dataset, plane/core
KNOWN_PRIVATE_USES: set[tuple[str, str]] = set()

#: (module, literal) of store key prefixes spelled outside plane/core/_layout.py
KNOWN_KEY_LITERALS: set[tuple[str, str]] = set()

DATASET_NAMES = frozenset({"ds", "dataset", "_ds", "_dataset"})
#: the prefixes plane/core/_layout.py owns (FORMAT.md), and the header's key
KEY_PREFIXES = ("refs/", "commits/", "states/", "parts/", "chunks/", "indexes/", "views/",
                "coordinator/", "quarantine/", "dataset.json")


# ---- reading the tree --------------------------------------------------------------------------
@functools.cache
def _files(top: str) -> tuple[tuple[str, ast.Module], ...]:
    """(module name, tree) of every .py file under ROOT/top (parsed once per run)."""
    out = []
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), ast.parse(path.read_text(), str(path))))
    return tuple(out)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every runtime import: at any depth (inside
    functions too), except in the body of an ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                yield from _imports_of(other)
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
    if isinstance(node, ast.Import):
        for a in node.names:
            yield a.name, None, node.lineno
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        for a in node.names:
            yield node.module, a.name, node.lineno
    yield from _imports(node)


def _package(module: str) -> str:
    """The node of the graph a plane module belongs to: `plane` itself, a subpackage
    (`plane.core`) or a top-level module (`plane.cli`, `plane._errors`)."""
    parts = module.split(".")
    return ".".join(parts[:2])


SUBPACKAGES = frozenset(p.name for p in PLANE.iterdir() if (p / "__init__.py").exists())


def _graph() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package -> where ("module:line") it happens."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, tree in _files("plane"):
        src = _package(module)
        for target, name, line in _imports(tree):
            if target.split(".")[0] != "plane":
                continue
            dst = _package(target)
            if target == "plane" and name in SUBPACKAGES:  # from plane import query
                dst = f"plane.{name}"
            if dst != src:
                edges.setdefault((src, dst), []).append(f"{module}:{line}")
    return edges


def _cycles(edges: dict[tuple[str, str], list[str]]) -> set[tuple[str, ...]]:
    """Every elementary cycle, as the tuple of its nodes starting from the smallest name."""
    nodes = sorted({n for e in edges for n in e})
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    found: set[tuple[str, ...]] = set()

    def walk(start: str, path: list[str]) -> None:
        for nxt in succ[path[-1]]:
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, [*path, nxt])

    for n in nodes:
        walk(n, [n])
    return found


def _explain(cycle: tuple[str, ...], edges: dict[tuple[str, str], list[str]]) -> str:
    hops = zip(cycle, (*cycle[1:], cycle[0]))
    return " -> ".join(cycle + cycle[:1]) + "\n      " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[a, b][:3])}" for a, b in hops)


def _shrink_only(what: str, found: dict[tuple[str, str], list[str]],
                 known: set[tuple[str, str]], hint: str) -> None:
    """Fail on a finding not in `known` (listing where it occurs) and on a `known` entry
    that is not found any more."""
    new, gone = sorted(set(found) - known), sorted(known - set(found))
    assert not new and not gone, (
        (f"new {what} ({hint}):\n" + "\n".join(
            f"  {k} at {', '.join(found[k][:5])}" for k in new) if new else "") +
        (f"\nallowlisted {what} that no longer occur: delete them from the allowlist in "
         f"tests/test_architecture.py:\n  {gone}" if gone else ""))


# ---- the rules ---------------------------------------------------------------------------------
def test_no_new_import_cycle_between_plane_packages() -> None:
    edges = _graph()
    now = _cycles(edges)
    new = sorted(now - KNOWN_CYCLES)
    gone = sorted(KNOWN_CYCLES - now)
    assert not new and not gone, (
        ("new import cycles between plane's packages:\n" +
         "\n".join("  " + _explain(c, edges) for c in new) if new else "") +
        ("\nallowlisted cycles that no longer exist: delete them from KNOWN_CYCLES in "
         f"tests/test_architecture.py:\n  {gone}" if gone else ""))


def test_the_bottom_layers_import_nothing_above_them() -> None:
    edges = _graph()
    below = {"plane._errors": set(), "plane._runtime": set(),
             "plane.storage": {"plane._errors", "plane._runtime"}}
    bad = [f"{a} -> {b} at {', '.join(w[:3])}" for (a, b), w in sorted(edges.items())
           if a in below and b not in below[a]]
    assert not bad, "a bottom layer imports a layer above it:\n  " + "\n  ".join(bad)


def test_clients_import_no_private_module_and_plane_never_imports_them() -> None:
    bad = []
    for top in CLIENTS:
        for module, tree in _files(top):
            for target, name, line in _imports(tree):
                if target.split(".")[0] != "plane":
                    continue
                private = any(p.startswith("_") for p in target.split(".")) or \
                    (name is not None and name.startswith("_") and name != "*")
                if private:
                    bad.append(f"{module}:{line} imports {target}" +
                               (f" {name}" if name else ""))
    assert not bad, ("private plane modules imported by actors/jobs/configs (export what they "
                     "need from the package that owns it):\n  " + "\n  ".join(bad))
    inverse = [f"{module}:{line} imports {target}" for module, tree in _files("plane")
               for target, _, line in _imports(tree) if target.split(".")[0] in CLIENTS]
    assert not inverse, "plane imports a client package:\n  " + "\n  ".join(inverse)


def _private_uses(tree: ast.AST) -> Iterator[ast.Attribute]:
    """`base._x` where base is a name or attribute called ds/dataset/_ds/_dataset."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                not node.attr.startswith("__"):
            base = node.value
            if (isinstance(base, ast.Name) and base.id in DATASET_NAMES) or \
                    (isinstance(base, ast.Attribute) and base.attr in DATASET_NAMES):
                yield node


def test_no_new_private_dataset_attribute_use_outside_dataset_and_core() -> None:
    found: dict[tuple[str, str], list[str]] = {}
    for top in ("plane", *CLIENTS):
        for module, tree in _files(top):
            if module.startswith(("plane.dataset", "plane.core")):
                continue
            for node in _private_uses(tree):
                found.setdefault((module, node.attr), []).append(f"{module}:{node.lineno}")
    _shrink_only("private Dataset attribute uses", found, KNOWN_PRIVATE_USES,
                 "use the public Dataset API, or what plane.core exports")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def test_store_key_prefixes_are_spelled_only_in_layout() -> None:
    found: dict[tuple[str, str], list[str]] = {}
    for top in ("plane", *CLIENTS):
        for module, tree in _files(top):
            if module == "plane.core._layout":
                continue
            docs = _docstrings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                        id(node) not in docs and node.value.startswith(KEY_PREFIXES):
                    prefix = next(p for p in KEY_PREFIXES if node.value.startswith(p))
                    found.setdefault((module, prefix), []).append(f"{module}:{node.lineno}")
    _shrink_only("store key literals outside plane/core/_layout.py", found,
                 KNOWN_KEY_LITERALS, "use the names and key functions of plane/core/_layout.py")


def test_no_test_hooks_in_the_product() -> None:
    """Fault injection lives in plane.testing; the ingest job's config has no test switch."""
    trees = {m: t for top in ("plane", "configs") for m, t in _files(top)}
    names = {m: {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} |
             {a.name for n in ast.walk(t) if isinstance(n, ast.ImportFrom) for a in n.names}
             for m, t in trees.items()}
    assert "FaultyStore" not in names["plane.storage"]
    assert "FaultyStore" in names["plane.testing"]
    config = next(n for n in ast.walk(trees["configs.ingest"])
                  if isinstance(n, ast.ClassDef) and n.name == "IngestConfig")
    fields = [n.target.id for n in config.body
              if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    assert "source" in fields and not [f for f in fields if "fail" in f], fields


def test_the_checks_see_what_they_look_for() -> None:
    """The scanners find a planted cycle, private import and private use (they are not
    vacuous)."""
    tree = ast.parse("import plane.core._x\nfrom typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    import plane.hidden\n"
                     "def f(ds, self):\n    from plane.query import run\n"
                     "    return ds._writer, self._ds._read, self.ds.public\n")
    assert [t for t, _, _ in _imports(tree)] == ["plane.core._x", "typing", "plane.query"]
    edges = {("a", "b"): ["a:1"], ("b", "c"): ["b:1"], ("c", "a"): ["c:1"], ("c", "d"): ["c:2"]}
    assert _cycles(edges) == {("a", "b", "c")}
    assert sorted(n.attr for n in _private_uses(tree)) == ["_read", "_writer"]
