"""Benchmarks: ``python -m qmc.bench [--quick] [--json]``, ``--optimize`` and ``--latency``.

* :mod:`qmc.bench.engines`: the pulse, stream and block engines against numpy versions of the
  same models, in the same run;
* :mod:`qmc.bench.streams`: the stream engine's part of it (afterpulsing and dead time);
* :mod:`qmc.bench.devices`: its last table, the exact sweep and the block and pulse engines on
  one device and split over every local device;
* :mod:`qmc.bench.optimize`: the optimizer against scipy's L-BFGS-B on the same objective;
* :mod:`qmc.bench.latency`: time to a first answer in a fresh process (``--latency``);
* :mod:`qmc.bench.timing`: the timer, the machine description and the table they share;
* :mod:`qmc.bench.gpu`: the scripts of a GPU session (``bash qmc/bench/gpu/check.sh``).

Recorded outputs and the tables behind the kernel choices are in docs/benchmarks/.
"""
