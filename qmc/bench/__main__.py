"""``python -m qmc.bench``: the engine benchmark; ``--optimize`` the optimizer benchmark, ``--latency`` the
time to a first answer, ``--compile`` the compile options."""

from __future__ import annotations

import argparse
import json

from qmc.engines.pulse import FUSED
from qmc.random.histogram import CATEGORICAL_METHODS, HISTOGRAM_METHODS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qmc.bench",
                                     description="Throughput of the Monte Carlo engines against numpy.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 3 repetitions (under a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--optimize", action="store_true",
                        help="the optimizer benchmark instead (qmc.bench.optimize: qmc against scipy L-BFGS-B)")
    parser.add_argument("--latency", action="store_true",
                        help="time to a first answer instead (qmc.bench.latency: fresh processes, cache off)")
    parser.add_argument("--compile", action="store_true",
                        help="compile times with XLA's defaults and qmc's options instead (qmc.bench.compile)")
    parser.add_argument("--runs", type=int, default=3,
                        help="--latency, --compile: runs per target (the median is reported)")
    parser.add_argument("--methods", default=None, metavar="CATEGORICAL,HISTOGRAM",
                        help=f"kernel methods of the pulse/stream engines (categorical: {', '.join(CATEGORICAL_METHODS)}; "
                             f"histogram: {', '.join(HISTOGRAM_METHODS + (FUSED,))}); default by backend, same numbers")
    args, rest = parser.parse_known_args(argv)
    if args.optimize:  # its own module, its own options (--points, --no-optax)
        from qmc.bench.optimize import main as optimize_main

        return optimize_main(["--quick"] * args.quick + ["--json"] * args.json + rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.latency or args.compile:
        if args.latency:
            from qmc.bench.latency import format_result, run
        else:
            from qmc.bench.compile import format_result, run

        result = run(runs=args.runs)
        print(format_result(result))
        if args.json:
            print(json.dumps(result))
        return None
    methods = None
    if args.methods:
        methods = tuple(args.methods.split(","))
        hist = HISTOGRAM_METHODS + (FUSED,)
        if len(methods) != 2 or methods[0] not in CATEGORICAL_METHODS or methods[1] not in hist:
            parser.error(f"--methods {args.methods!r}: expected CATEGORICAL,HISTOGRAM with categorical in "
                         f"{CATEGORICAL_METHODS} and histogram in {hist} ({FUSED!r}: the fast path's fused "
                         f"kernel; the other engines then keep the backend's histogram)")
    from qmc.bench.engines import format_result, run

    result = run(quick=args.quick, methods=methods)
    print(format_result(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
