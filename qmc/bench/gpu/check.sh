#!/usr/bin/env bash
# One-shot GPU check (about three minutes on an H100), run from the repository root on the GPU machine:
#   bash qmc/bench/gpu/check.sh            (with qmc importable: pip install -e '.[cuda]' or PYTHONPATH=.)
# 1. kernel variants of the engines, each checked to give the reference tally, timed
#    (qmc/bench/gpu/variants.py); 2. the benchmark with the fastest fast-path kernels (its table goes
#    in the README with the card's name); 3. the GPU-marked tests (GPU tally == CPU tally) and the
#    fused kernel on BBM92's cells and a fading pass's tables; 4. the
#    compiled HLO of the engines (qmc/bench/gpu/hlo.py; seven files under $OUT in all).
# Everything is also written under $OUT (or ./gpu_out) so that a timeout loses nothing.
set -uo pipefail
out="${OUT:-gpu_out}"; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1 | tee "$out/gpu.txt"
python -c "import jax; print(jax.__version__, jax.devices()); assert jax.default_backend() == 'gpu', 'no GPU'" || exit 1
timeout "${VARIANTS_S:-260}" python -m qmc.bench.gpu.variants --budget-s "${BUDGET_S:-180}" --json "$out/variants.json" 2>&1 | tee "$out/variants.txt"
best=$(grep -o 'best_methods=[a-z0-9_]*,[a-z0-9_]*' "$out/variants.txt" | tail -1 | cut -d= -f2)
timeout "${BENCH_S:-200}" python -m qmc.bench --json ${best:+--methods "$best"} 2>&1 | tee "$out/bench_gpu.txt"
timeout "${TESTS_S:-90}" python -m pytest -q -p no:cacheprovider tests/test_pulse.py tests/test_fused.py -k "gpu" 2>&1 | tail -5 | tee "$out/tests.txt"
# 3b. the fused kernel on the protocol-owned cells (BBM92) and the per-slot tables of a fading pass: the
#     same tests as on the CPU, where they run the kernel in Pallas's interpreter
timeout "${TESTS2_S:-120}" python -m pytest -q -p no:cacheprovider -m "not slow" tests/test_bbm92_engines.py \
    tests/test_fading_engines.py 2>&1 | tail -5 | tee "$out/tests_cells_slots.txt"
# 4. the compiled HLO of the engines, for reading offline (one archive: $OUT returns at most 8 files)
timeout "${HLO_S:-60}" python -m qmc.bench.gpu.hlo /tmp/qmc_hlo 2>&1 | tee "$out/hlo.txt" && tar czf "$out/hlo.tgz" -C /tmp qmc_hlo
