"""The scripts of a GPU session, run from the repository root on the GPU machine:
``bash qmc/bench/gpu/check.sh`` (kernel variants, the benchmark, the GPU tests, the compiled HLO),
or one of ``python -m qmc.bench.gpu.<variants|crosscheck|diag|block|hlo>``."""
