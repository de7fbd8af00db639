#!/usr/bin/env bash
# One-shot GPU check (issue #5): run on the GPU machine from the repository root, e.g.
#   pip install -e '.[cuda,test]' && bash scripts/gpu_check.sh
# Prints the device, runs the GPU-marked tests and the stream/pulse engine tests on the GPU,
# then the full benchmark (its table goes in the README with the card's name).
set -euo pipefail
python -c "import jax; print(jax.devices()); assert jax.default_backend() == 'gpu', 'no GPU'"
python -m pytest -q -m "gpu or not slow" tests/test_streams.py tests/test_pulse.py tests/test_throughput.py
python -m qmc.bench --json | tee "${OUT:-.}/bench_gpu.txt"
