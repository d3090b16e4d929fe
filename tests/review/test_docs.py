"""The README and docs/ match the code: the API examples run, imports resolve, links land, the
generated tables are current, and the pages hold a manual rather than a lab notebook."""

from __future__ import annotations

import ast
import importlib
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
GEN_DOCS = REPO_ROOT / "scripts" / "gen_docs.py"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def bash_blocks(page: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)


# ----------------------------------------------------------------------------- the API page
def test_the_api_examples_run_in_order():
    """docs/api.md's examples, run as one notebook (each asserts what it shows); then the
    properties the page claims, checked on what they built."""
    import numpy as np

    from sgd_dynamics.curvature import principal_angles

    blocks = python_blocks(DOCS / "api.md")
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md, example {i + 1}", "exec"), namespace)
    s, it, exact = namespace["s"], namespace["it"], namespace["exact"]
    assert s.hf_all.shape == (1002,)  # P <= 3000: the dense method, every eigenvalue
    assert np.max(np.abs(s.hf_top - exact) / np.abs(exact)) < 1e-12  # autograd's Hessian
    assert principal_angles(it.hf_vecs, s.hf_vecs).min() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(namespace["top"].eigenvalues.numpy(), s.hf_top[:5], rtol=1e-8)
    assert list(namespace["history"].steps) == [0, 10]


def test_every_python_example_compiles_and_its_imports_resolve():
    """Every ```python block of the README and docs/ parses, and each name it imports from the
    project exists (a renamed module or function breaks this test, not a reader)."""
    checked = 0
    for page in PAGES:
        for block in python_blocks(page):
            tree = ast.parse(block, filename=page.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module.startswith("sgd_dynamics"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name), (page.name, node.module, alias.name)
                        checked += 1
    assert checked >= 10


# ----------------------------------------------------------------------------- the README
def test_the_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    for author in ("Xinyan Li", "Qilong Gu", "Yingxue Zhou", "Tiancong Chen", "Arindam Banerjee"):
        assert author in text
    assert "Hessian based analysis of SGD for Deep Nets: Dynamics and Generalization" in text
    for figure in ("default_run_full_spectra.png", "default_run_alignment.png"):
        assert f"](docs/figures/{figure})" in text


def test_the_quick_start_is_two_commands_that_match_ci():
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, re.S)
    commands = [line.split(" # ")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["bash scripts/setup.sh && .venv/bin/python train.py", "bash .ci/run"]
    assert not re.search(r"\d+\s*(s|min|seconds|minutes)\b", block)  # no timings
    ci = (REPO_ROOT / ".ci/run").read_text()
    assert "bash scripts/setup.sh" in ci and "bash scripts/test.sh" in ci
    assert ".venv/bin/ruff check ." in ci and ".venv/bin/ruff format --check ." in ci


# ----------------------------------------------------------------------------- every page
def test_no_dates_history_or_process_talk():
    pattern = re.compile(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}|[Ii]ssue|session")
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{page.name}:{number}: {line}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_relative_link_and_anchor_lands():
    links = 0
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            assert destination.is_file(), f"{page.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", destination.read_text(), re.M)
                assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"
            links += 1
    assert links >= 40


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text()
    for page in DOCS.glob("*.md"):
        assert f"](docs/{page.name})" in text, page.name


def test_lead_placeholders_are_comments():
    """Sections to be written are HTML comments, invisible on the rendered page."""
    for page in PAGES:
        for line in page.read_text().splitlines():
            if "lead:" in line:
                assert line.startswith("<!-- lead:") and line.endswith("-->"), line


# ----------------------------------------------------------------------------- generated blocks
def gen_docs() -> dict[str, object]:
    return runpy.run_path(str(GEN_DOCS))


def test_the_generated_blocks_are_current():
    done = subprocess.run(
        [sys.executable, str(GEN_DOCS), "--check"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_key_table_is_the_schema():
    """Read back from the page, the table lists every key users set, in the schema's order, with
    what it accepts and what it means; the keys set by groups are listed apart."""
    from sgd_dynamics.config_schema import SCHEMA

    text = (DOCS / "configuration.md").read_text()
    table = text.split("<!-- generated: config-keys -->\n", 1)[1].split("<!-- end generated")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        key, accepted, meaning = (c.strip() for c in line.strip().strip("|").split(" | "))
        rows.append((key.strip("`"), accepted, meaning))
    assert rows == [(k.name, k.kind.text, k.meaning) for k in SCHEMA if not k.set_by_group]
    listed = text.split("<!-- generated: config-set-by-group -->", 1)[1].split("<!-- end")[0]
    assert set(re.findall(r"`([^`]+)`", listed)) == {k.name for k in SCHEMA if k.set_by_group}


def test_a_stale_block_is_found_and_rewritten(tmp_path):
    regenerate = gen_docs()["regenerate"]
    text = (DOCS / "configuration.md").read_text()
    stale = re.sub(r"\| `spectral\.k` \|.*\n", "", text)
    assert stale != text
    fixed, changed = regenerate(stale)
    assert changed == ["config-keys"] and fixed == text
    assert regenerate(text) == (text, [])


def test_benchmark_results_describe_their_machine():
    results = sorted((REPO_ROOT / "benchmarks" / "results").glob("*.json"))
    assert results
    for path in results:
        record = json.loads(path.read_text())
        assert record["benchmark"] == path.stem
        for key in ("cpu", "logical_cpus", "usable_cpus", "torch", "torch_threads"):
            assert record["machine"][key] not in (None, ""), (path.name, key)
        assert record["command"].startswith("benchmarks/")
        assert record["rows"] and all(isinstance(row, dict) for row in record["rows"])


def test_performance_quotes_result_files_only():
    """Every number in a table of docs/performance.md comes from a generated block."""
    text = (DOCS / "performance.md").read_text()
    outside = re.sub(r"<!-- generated: .*?<!-- end generated -->", "", text, flags=re.S)
    for line in outside.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            assert not re.search(r"\d+\.\d+\s*(s|x)\b", line), line
    assert "<!-- generated: bench:" in text
