"""`make bench-quick` runs every benchmark's --quick, and the `bench` extra installs what they import.

Nothing is timed here (BENCHMARKS.md: no timed tests): only the wiring a fresh clone depends on.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a module whose name starts with "_" is a helper the benchmarks share (benchmarks/_cells.py), not one
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
LOCAL = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}  # benchmarks importing each other
# needed at run time but never imported by name: transformers' Trainer refuses to start without it
HIDDEN = {"Trainer(": "accelerate"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _bench_requirements() -> set[str]:
    """Distributions that `pip install -e '.[bench]'` brings: the core ones, bench's, and the extras it names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, names = project["optional-dependencies"], {_name(r) for r in project["dependencies"]}
    todo, seen = ["bench"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for req in extras[extra]:
            m = re.match(r"domainlm\[(.+)\]", req)
            if m:
                todo += [e.strip() for e in m.group(1).split(",") if e.strip() not in seen]
            else:
                names.add(_name(req))
    return names


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m != "domainlm"}


def test_there_are_benchmarks_and_each_has_a_quick_flag():
    assert len(BENCHMARKS) >= 5
    for f in BENCHMARKS:
        assert re.search(r"add_argument\(\s*\"--quick\"", f.read_text(encoding="utf-8")), f.name


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_bench_quick_runs_each_benchmark_with_quick():
    out = subprocess.run(
        ["make", "-n", "bench-quick", "VENV=.venv-dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for f in BENCHMARKS:
        assert f".venv-dry-run/bin/python benchmarks/{f.name} --quick" in out, f.name


def test_the_bench_extra_has_what_each_benchmark_imports_and_all_includes_it():
    have = _bench_requirements()
    dists = packages_distributions()
    for f in BENCHMARKS:
        text = f.read_text(encoding="utf-8")
        for mod in _imports(f) - LOCAL:
            names = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
            assert names & have, f"{f.name} imports {mod} ({', '.join(names)}): add it to the bench extra"
        for marker, dist in HIDDEN.items():
            if marker in text:
                assert dist in have, f"{f.name} uses {marker[:-1]}, which needs {dist}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any("bench" in re.findall(r"[\w-]+", r) for r in extras["all"])
