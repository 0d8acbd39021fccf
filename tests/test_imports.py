"""Imports among our modules run one way: command line -> (bench, tune) -> building -> tasks -> data/networks/
renderers. Checked on the source (every import statement, also those inside functions)."""

import ast
import os

from conftest import REPO

PACKAGES = ("aign_tf", "trainers")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for package in PACKAGES:
        for root, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    modules[_module_name(path)] = path
    graph = {}
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(n for n in names if n in modules and n != module)
        graph[module] = targets
    return graph


def _reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_module_imports_itself_through_others():
    graph = _import_graph()
    cycles = sorted(m for m in graph if m in _reachable(graph, m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_layers():
    graph = _import_graph()
    assert not any("aign_tf.main" in targets for targets in graph.values())  # nothing imports the command line
    for lower in ("aign_tf.building", "aign_tf.tasks.faces", "aign_tf.tasks.pose", "trainers.loop"):
        assert not {"aign_tf.bench", "trainers.tune"} & _reachable(graph, lower), lower
    for user in ("aign_tf.bench", "trainers.tune"):
        assert "aign_tf.building" in graph[user]
