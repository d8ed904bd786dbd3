#!/usr/bin/env bash
# Set-up and entry points on a fresh machine. Each command creates what it needs first:
# a virtual environment (.venv), PyTorch installed explicitly, then monai-ssl with its test extra.
#
#   ./run.sh demo [args]   the main job on the embedded demo data
#   ./run.sh test [args]   the test suite (pytest arguments pass through)
#
# Environment:
#   TORCH_SPEC       the torch requirement installed first (default: torch==2.13.0, a CPU build here);
#                    e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
#   MONAI_SSL_VENV   where to create the virtual environment (default: .venv)
#   PYTHON           the interpreter that creates it (default: python3, 3.10 or newer)
set -euo pipefail
cd "$(dirname "$0")"

VENV=${MONAI_SSL_VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # re-install only when the torch spec or the package metadata changed
    local stamp="$VENV/.monai-ssl-setup" wanted
    wanted="$TORCH_SPEC $(cksum < pyproject.toml)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "run.sh: installing $TORCH_SPEC, then monai-ssl into $VENV" >&2
        # torch first: a bare 'torch' requirement would otherwise pull a multi-GB CUDA build
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m pip install --quiet $TORCH_SPEC
        "$VENV/bin/python" -m pip install --quiet -e ".[test]"
        echo "$wanted" > "$stamp"
    fi
}

command=${1:-}
shift || true
case "$command" in
    demo)
        setup
        exec "$VENV/bin/python" -m monai_ssl demo "$@"
        ;;
    test)
        setup
        exec "$VENV/bin/python" -m pytest -q "$@"
        ;;
    *)
        echo "usage: ./run.sh demo|test [args]" >&2
        exit 2
        ;;
esac
