"""Rewrite, or check, the tables of the docs that show a study's numbers, from the study's own output.

    python scripts/doc_tables.py            # run the studies, rewrite the tables in place
    python scripts/doc_tables.py --check    # run them, exit 1 with a diff where a table drifted
    python scripts/doc_tables.py --experiments  # also run every experiment (a fresh process
                                            # each, cache off): the README's time column and the
                                            # gallery's figures (experiments/<paper>/figure.png)

A table sits between ``<!-- table: NAME -->`` and ``<!-- /table -->`` in a Markdown file; NAME is
a key of :data:`TABLES`: the command's overrides and how its rows are written. The README's time
column is measured, not checked (machines differ); ``--experiments`` rewrites it and copies each
reproduced paper's figure from its experiment's run (:data:`GALLERY`).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows(*overrides: str) -> list[dict]:
    """Every row the study of ``qmc <overrides>`` yields (its printed output silenced)."""
    import contextlib
    import io

    from qmc import cli

    _, _, chunks = cli.prepare(cli.compose(*overrides))
    with contextlib.redirect_stdout(io.StringIO()):
        return [row for chunk in chunks for row in chunk.rows]


def _n(x: float) -> str:
    return f"{x:,.0f}"


def finite_key_mc_table() -> str:
    """docs/finite_key.md: Monte Carlo sessions beside the expected-count bound."""
    rows = [r for r in _rows("experiment=finite_key_mc") if r["kind"] == "summary"]
    by = {(r["length_km"], r["block_size"], r["rule"]): r for r in rows}
    lines = ["| point | expected-count l | until_full: median (5-95 %) | abort | fixed_pulses: median (5-95 %) | abort |",
             "|---|---|---|---|---|---|"]
    for block in sorted({r["block_size"] for r in rows}):
        for length in sorted({r["length_km"] for r in rows}):
            cells = [f"{length:g} km, n_X = {block:.0e}".replace("e+0", "e"), _n(by[(length, block, "until_full")]["key_length_expected"])]
            for rule in ("until_full", "fixed_pulses"):
                r = by[(length, block, rule)]
                abort = r["abort_probability"]
                cells += [f"{_n(r['key_length_median'])} ({_n(r['key_length_q05'])}-{_n(r['key_length_q95'])})",
                          "0" if abort == 0 else f"{100 * abort:.1f} %"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


OPTIMIZE_LINK = ("experiment=optimize_link", "channel.length_km=80", "detector=snspd", "analysis=finite_lim2014",
                 "analysis.block_size=1e10")


def optimize_link_table() -> str:
    """docs/optimize.md: the table ``qmc experiment=optimize_link channel.length_km=80 ...`` prints."""
    from qmc.studies.optimize_link import format_table

    rows = _rows(*OPTIMIZE_LINK)
    labels = list(dict.fromkeys(r["analysis"] for r in rows))
    parts = [format_table([r for r in rows if r["analysis"] == label], notes=False) for label in labels]
    from qmc.studies.optimize_link import table_notes

    return "```text\n" + "\n".join(parts + table_notes(rows)) + "\n```"


TABLES = {
    "finite_key_mc": (ROOT / "docs" / "finite_key.md", finite_key_mc_table),
    "optimize_link": (ROOT / "docs" / "optimize.md", optimize_link_table),
}

_BLOCK = r"(<!-- table: {name} -->\n)(.*?)(\n<!-- /table -->)"


def _replace(text: str, name: str, table: str) -> str:
    pattern = re.compile(_BLOCK.format(name=re.escape(name)), re.S)
    if not pattern.search(text):
        raise SystemExit(f"doc_tables: no '<!-- table: {name} -->' block")
    return pattern.sub(lambda m: m.group(1) + table + m.group(3), text)


GALLERY = {  # experiment -> its folder in experiments/ (the figure.png there is the run's figure)
    "decoy_bb84_gys": "lo_ma_chen_2005", "finite_lim2014": "lim2014", "one_vs_two_decoy": "rusca2018",
    "decoy_bb84_snspd": "snspd_zadeh2017",
}


def _experiments() -> None:
    """Run every experiment of the README's table (a fresh process each, cache off): write "~N s"
    into its time column, and copy the gallery's figures."""
    import shutil

    from qmc.results import read_metadata

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("## Experiments"):]
    section = section[: section.index("\n## ", 1)]
    for name in re.findall(r"^\| `(\w+)`(?: \(default\))? \|", section, re.M):
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            subprocess.run(["qmc", f"experiment={name}", f"hydra.run.dir={run_dir}"], check=True,
                           env={**os.environ, "QMC_CACHE_DIR": ""}, capture_output=True)
            seconds = time.perf_counter() - start
            if name in GALLERY:
                png = [f for f in read_metadata(run_dir)["figures"] if f.endswith(".png")][0]
                shutil.copyfile(Path(run_dir) / png, ROOT / "experiments" / GALLERY[name] / "figure.png")
        shown = f"~{5 * math.ceil(seconds / 5)} s"
        text = re.sub(rf"^(\| `{name}`(?: \(default\))? \|.*\| )~\d+ s \|$", lambda m: m.group(1) + shown + " |",
                      text, flags=re.M)
        print(f"{name}: {seconds:.1f} s -> {shown}")
    readme.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write; exit 1 on a difference")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the experiments: the README's times and the gallery's figures")
    parser.add_argument("names", nargs="*", help=f"tables to make (default: all of {', '.join(TABLES)})")
    args = parser.parse_args(argv)
    drifted = 0
    for name in args.names or TABLES:
        path, make = TABLES[name]
        text = path.read_text(encoding="utf-8")
        new = _replace(text, name, make())
        if new == text:
            print(f"{name}: {path.relative_to(ROOT)} is up to date")
        elif args.check:
            drifted += 1
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), str(path), "study"))
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{name}: {path.relative_to(ROOT)} rewritten")
    if args.experiments and not args.check:
        _experiments()
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
