"""Lists the benchmarks, or runs one: ``python bench/run.py [NAME] [ARGS...]``.

Each benchmark is a module ``bench/NAME.py`` whose docstring's first line says what it
measures. It sets up what it needs, measures a baseline in the same run (these machines are
noisy, so only ratios are comparable), and ends by printing one JSON line of its figures.
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, str]:
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name == "run.py" or path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def main(argv: list[str]) -> int:
    available = benchmarks()
    if not argv:
        width = max((len(name) for name in available), default=0)
        for name, summary in available.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    name = argv[0]
    if name not in available:
        print(f"unknown benchmark {name!r}; known: {', '.join(available)}", file=sys.stderr)
        return 2
    sys.argv = [str(HERE / f"{name}.py"), *argv[1:]]
    sys.path.insert(0, str(HERE))
    runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
