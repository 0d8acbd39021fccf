"""The README stays a short user's guide whose links lead somewhere, and CI runs what it shows."""

import os
import re

from conftest import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _markdown_files():
    yield os.path.join(REPO, "README.md")
    for root, _, files in os.walk(os.path.join(REPO, "docs")):
        yield from (os.path.join(root, f) for f in files if f.endswith(".md"))


def test_readme_is_short():
    assert os.path.getsize(os.path.join(REPO, "README.md")) < 12 * 1024  # details live in docs/


def test_relative_links_resolve():
    missing = []
    for path in _markdown_files():
        with open(path) as f:
            for target in LINK.findall(f.read()):
                local = "://" not in target and not target.startswith("mailto:")
                if local and not os.path.exists(os.path.join(os.path.dirname(path), target)):
                    missing.append(f"{os.path.relpath(path, REPO)} -> {target}")
    assert not missing, missing


def test_ci_runs_the_readmes_second_command():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci_command = [line for line in f.read().splitlines() if line.startswith("pip install")][0]
    assert ci_command in readme
