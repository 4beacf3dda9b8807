#!/usr/bin/env bash
# Fill deploy/wheels with wheels of every build and run dependency of pyproject.toml, through this
# host's pip configuration (its index or mirror), so the image builds with PIP_NO_INDEX=1: the
# build containers then need no route to, or certificate for, a package index.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
reqs="$("$PYTHON" - <<'PY'
import tomllib
data = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(data["build-system"]["requires"] + data["project"]["dependencies"]))
PY
)"
mapfile -t reqs <<<"$reqs"
"$PYTHON" -m pip wheel --quiet --wheel-dir deploy/wheels pip "${reqs[@]}"
echo "$(ls deploy/wheels/*.whl | wc -l) wheels in deploy/wheels"
