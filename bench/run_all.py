"""Run every benchmark script in bench/ (or those named on the command line) in turn.

The soak (bench/soak.py, ten minutes of the paper stack) runs only when named:
``python bench/run_all.py soak``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ON_REQUEST = {"soak"}  # too long for every `make bench`


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("*.py")
                           if not p.stem.startswith("_") and p.stem != "run_all" and p.stem not in ON_REQUEST)
    failed = []
    for name in names:
        print(f"### bench/{name}.py", flush=True)
        if subprocess.call([sys.executable, str(HERE / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
