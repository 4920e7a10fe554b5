#!/usr/bin/env bash
# The peers' virtual environments for the overhead benchmark, with pinned versions.
#   DSPy 3.4.1 on the default python3 (3.11); Synalinks 0.10.14 on pyenv's 3.12
#   (Synalinks 0.8.38 installs on 3.11 but fails to import there).
# Usage: bash bench/overhead/setup_venvs.sh   (idempotent; venvs go to bench/.venvs/)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/../.venvs"
mkdir -p "$venvs"

DSPY_VERSION=3.4.1
SYNALINKS_VERSION=0.10.14
PY311="${PY311:-python3}"
PY312="${PY312:-$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3 2>/dev/null | sort -V | tail -1)}"

make_venv() {  # name python packages...
    local name=$1 python=$2; shift 2
    if [ ! -x "$venvs/$name/bin/python" ]; then
        "$python" -m venv "$venvs/$name"
    fi
    "$venvs/$name/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$venvs/$name/bin/python" -m pip freeze --disable-pip-version-check > "$venvs/$name.freeze.txt"
}

make_venv dspy "$PY311" "dspy==$DSPY_VERSION" numpy  # numpy: KNNFewShot (bench/retrieval) requires it
if [ -z "$PY312" ]; then
    echo "no Python 3.12 under ~/.pyenv/versions: set PY312=/path/to/python3.12" >&2
    exit 1
fi
make_venv synalinks "$PY312" "synalinks==$SYNALINKS_VERSION"
echo "venvs ready in $venvs"
