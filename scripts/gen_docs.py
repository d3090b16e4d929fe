"""Rewrite the generated parts of docs/*.md from the code and the benchmark results.

Usage:
    .venv/bin/python scripts/gen_docs.py           # rewrite every generated block in docs/
    .venv/bin/python scripts/gen_docs.py --check   # exit 1, naming them, if any block is stale

A generated block sits between two HTML comments, invisible on the rendered page:

    <!-- generated: NAME -->
    ...
    <!-- end generated -->

NAME is one of
    config-keys          the table of the keys a user sets, from `config_schema.SCHEMA`
    config-set-by-group  the keys set by group options, Hydra or top-level keys, from `SCHEMA`
    bench:RESULT         the rows of benchmarks/results/RESULT.json with its machine
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
RESULTS = REPO_ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- generated: ", "<!-- end generated -->"


def config_keys() -> str:
    """| key | accepted | meaning | for every key of SCHEMA a user sets, in SCHEMA's order."""
    from sgd_dynamics.config_schema import SCHEMA

    lines = ["| key | accepted | meaning |", "|---|---|---|"]
    for key in SCHEMA:
        if not key.set_by_group:
            lines.append(f"| `{key.name}` | {key.kind.text} | {key.meaning} |")
    return "\n".join(lines)


def config_set_by_group() -> str:
    """The keys that group options, Hydra or top-level keys set, as one paragraph."""
    from sgd_dynamics.config_schema import SCHEMA

    names = ", ".join(f"`{key.name}`" for key in SCHEMA if key.set_by_group)
    return (
        "Set by the group options, Hydra or the top-level keys, and checked the same way "
        f"(override them only through those): {names}."
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() or abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


def benchmark_table(name: str, results: Path = RESULTS) -> str:
    """The rows of benchmarks/results/<name>.json as a table, after one line on the machine."""
    record = json.loads((results / f"{name}.json").read_text())
    m = record["machine"]
    load = ", ".join(f"{v:g}" for v in m["load_average_at_start"])
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines = [
        f"`benchmarks/results/{name}.json`, written by `{record['command']}`: "
        f"{m['cpu']}, {m['usable_cpus']} of {m['logical_cpus']} CPUs usable{gpu}, "
        f"torch {m['torch']}, numpy {m['numpy']}, {m['torch_threads']} torch thread(s) "
        f"(OMP_NUM_THREADS={m['OMP_NUM_THREADS']}), load average {load} at the start.",
        "",
    ]
    columns = list(record["rows"][0])
    lines.append("| " + " | ".join(c.replace("_", " ") for c in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in record["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def render(name: str) -> str:
    """The text of the generated block NAME."""
    generators: dict[str, Callable[[], str]] = {
        "config-keys": config_keys,
        "config-set-by-group": config_set_by_group,
    }
    if name.startswith("bench:"):
        return benchmark_table(name.removeprefix("bench:"))
    if name not in generators:
        raise SystemExit(f"error: unknown generated block {name!r}: {', '.join(generators)}")
    return generators[name]()


BLOCK = re.compile(r"^<!-- generated: (\S+) -->\n(.*?)^<!-- end generated -->$", re.M | re.S)


def regenerate(text: str) -> tuple[str, list[str]]:
    """`text` with every generated block rewritten, and the names of the blocks that changed.

    A block's markers each stand alone on a line (a marker quoted inside a sentence is text)."""
    changed: list[str] = []

    def rewrite(block: re.Match) -> str:
        name, old = block.group(1), block.group(2)
        new = render(name) + "\n"
        if new != old:
            changed.append(name)
        return f"{BEGIN}{name} -->\n{new}{END}"

    return BLOCK.sub(rewrite, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args(argv)
    stale = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        new, changed = regenerate(text)
        stale += [f"{page.relative_to(REPO_ROOT)}: {name}" for name in changed]
        if changed and not args.check:
            page.write_text(new)
    if args.check and stale:
        print("stale generated blocks (run scripts/gen_docs.py):", *stale, sep="\n  ")
        return 1
    for line in stale:
        print(f"rewrote {line}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
