"""No path of the build machine in the project (DESIGN: data files are found through one helper).

The pattern is the team's (shared/hooks/before-stop): an absolute path under /work, /root or /home.
The SPDX file is found by ``domainlm.datafiles.spdx_path``; its error names both places it looked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from domainlm.datafiles import SPDX_ENV, spdx_path
from domainlm.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(^|[^A-Za-z0-9_.])/(work|root|home)/[A-Za-z]")
CHECKED = ("src", "docs", "benchmarks")
TEXT = {".py", ".md", ".txt", ".yaml", ".yml", ".toml", ".json", ".jsonl", ".html", ".js", ".css", ".cfg"}


def _project_files(top: str) -> list[Path]:
    """The files of ``top`` that belong to the project: in a git checkout, tracked or not ignored (so the
    outputs of a benchmark run, e.g. benchmarks/.work/, which name this machine's paths, are not ours)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", top],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        return sorted(f for f in (ROOT / top).rglob("*") if f.is_file())
    return sorted(ROOT / line for line in out.splitlines() if (ROOT / line).is_file())


def test_no_absolute_path_of_this_machine_in_src_docs_or_benchmarks():
    found = []
    for top in CHECKED:
        for f in _project_files(top):
            if f.suffix in TEXT and "__pycache__" not in f.parts:
                for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                    if MACHINE_PATH.search(line):
                        found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert found == [], "\n".join(found)


def test_the_pattern_catches_machine_paths_and_spares_urls_and_relative_ones():
    assert MACHINE_PATH.search('SPDX = Path("/work/shared/data/x.jsonl")')
    assert MACHINE_PATH.search("see /home/alice/corpus")
    assert not MACHINE_PATH.search("https://example.org/home/page and ../shared/data and .venv/lib")


def test_spdx_path_prefers_the_environment_variable(tmp_path, monkeypatch):
    f = tmp_path / "spdx.jsonl"
    f.write_text('{"id": "MIT", "text": "x"}\n')
    monkeypatch.setenv(SPDX_ENV, str(f))
    assert spdx_path() == f
    monkeypatch.setenv(SPDX_ENV, str(tmp_path / "missing.jsonl"))
    with pytest.raises(UserError, match=SPDX_ENV):
        spdx_path()


def test_spdx_path_without_the_variable_or_the_shared_file_says_where_it_looked(tmp_path, monkeypatch):
    import domainlm.datafiles as datafiles

    monkeypatch.delenv(SPDX_ENV, raising=False)
    monkeypatch.setattr(datafiles, "SHARED_DATA", tmp_path / "nowhere")
    with pytest.raises(UserError) as err:
        spdx_path()
    assert SPDX_ENV in str(err.value) and "../shared/data/spdx-licenses.jsonl" in str(err.value)


def test_benchmarks_find_the_spdx_file_through_the_helper():
    for f in sorted((ROOT / "benchmarks").glob("*.py")):
        text = f.read_text(encoding="utf-8")
        if "spdx-licenses" in text or "spdx_path" in text:
            assert "spdx_path()" in text, f"{f.name} reads the SPDX file without domainlm.datafiles.spdx_path"
            assert 'shared" / "data' not in text, f"{f.name} builds the shared path itself"
