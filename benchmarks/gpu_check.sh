#!/usr/bin/env bash
# The GPU check in one command (see benchmarks/gpu_check.py and docs/performance.md, "GPU check").
#
#   benchmarks/gpu_check.sh [--quick] [--include] [--parts tests,sync,dense,conv,train]
#
# Runs from the repository root with this checkout first on the path. Pure-Python wheels that
# the machine lacks (array-api-compat, array-api-extra, array-api-strict, ...) can travel in
# ./.whl: when that folder holds wheels they are installed into ${BP_XP_SITE:-/tmp/bp_xp_site} first (no
# index, no internet needed). PYTHON picks the interpreter (default: python3).
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target ${BP_XP_SITE:-/tmp/bp_xp_site} .whl/*.whl || exit 2
    export PYTHONPATH=${BP_XP_SITE:-/tmp/bp_xp_site}${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$PY" benchmarks/gpu_check.py "$@"
