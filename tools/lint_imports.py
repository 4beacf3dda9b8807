"""Run import-linter on the one `tradebus` namespace that setup.py assembles from three roots.

The distribution maps libs/tradebus, proto/tradebus/proto and services into one package, so on
disk no folder holds all of `tradebus`; import-linter (grimp) walks a package's folder. This lays
the Python sources out as installed, in a temporary folder, and runs `lint-imports` there with
the contracts of `.importlinter`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {"tradebus": ROOT / "libs" / "tradebus", "tradebus/proto": ROOT / "proto" / "tradebus" / "proto",
          "tradebus/services": ROOT / "services"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tradebus-imports-") as tmp:
        for target, source in LAYOUT.items():
            shutil.copytree(source, Path(tmp) / target, dirs_exist_ok=True,
                            ignore=lambda folder, names: [n for n in names if not (n.endswith(".py") or
                                                                                 (Path(folder) / n).is_dir())
                                                          or n == "__pycache__"])
        env = {**os.environ, "PYTHONPATH": tmp}
        lint = Path(sys.executable).with_name("lint-imports")
        return subprocess.call([str(lint), str(ROOT / ".importlinter"), *sys.argv[1:]], cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main())
