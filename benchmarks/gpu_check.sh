#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): run it first on a lent GPU machine, then commit the JSON it writes.
#   bash benchmarks/gpu_check.sh            # on the GPU machine: writes benchmarks/results/gpu_check.json
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: every part on the CPU at toy sizes
# Without CUDA (and without --dry-run) it says so in one line and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 470 python3 benchmarks/gpu_check.py "$@"
