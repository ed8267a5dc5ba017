#!/usr/bin/env bash
# The CUDA engines' parity and end-to-end fps on this machine, one table (tools/gpu_check.py).
# Without CUDA it prints "skipped: REASON" and exits 0. PYTHON picks the interpreter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
exec timeout 480 "${PYTHON:-python3}" "${root}/tools/gpu_check.py" "$@"
