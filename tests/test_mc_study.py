"""Study decoy_bb84_mc: config composition, a short CLI run, and rows that agree with exact."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qmc import cli, studies


def test_config_composes_and_study_is_registered():
    cfg = cli.compose("experiment=decoy_bb84_mc")
    assert cfg.study == "decoy_bb84_mc"
    assert cfg.detector.click_model == "threshold"
    assert list(cfg.protocol.intensities) == [0.48, 0.1, 0.0]
    assert studies.get("decoy_bb84_mc").columns[0] == "length_km"


def test_cli_short_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "qmc.cli", "experiment=decoy_bb84_mc", "engine.n_pulses=4e6",
           "sweep.length_km.values=[0,50]", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert len(rows) == 2 * 3 * 3  # lengths x engines x intensities
    assert (run_dir / "engines_vs_exact.png").is_file()
    for row in rows:
        if row["engine"] == "exact":
            continue
        n, p = int(row["n_sent"]), float(row["gain_exact"])
        sd = math.sqrt(n * p * (1 - p))
        if n * p < 100:  # too few expected clicks for a normal tolerance (vacuum class)
            continue
        assert abs(int(row["n_detected"]) - n * p) <= 5 * sd, row


def test_bad_engine_setting_is_one_line_error(tmp_path: Path):
    cmd = [sys.executable, "-m", "qmc.cli", "experiment=decoy_bb84_mc", "engine.path=quantum",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "path" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["decoy_bb84_mc"])
def test_figure_from_rows(name, tmp_path):
    from qmc.studies.decoy_mc import decoy_bb84_mc_rows
    import jax

    rows = decoy_bb84_mc_rows(jax.random.key(0), lengths_km=[10.0], engines=("exact", "block"), n_pulses=10**6)
    fig = studies.get(name).draw(rows)
    assert len(fig.axes) == 2


def test_engine_methods_from_the_config():
    """``engine.methods`` reaches the pulse engine (the same counts as the device's choice: speed only),
    and an unknown kernel is refused, naming the field, before anything compiles."""
    import jax
    import numpy as np

    from qmc import ValidationError, cli
    from qmc.studies.decoy_mc import decoy_bb84_mc_rows

    cfg = cli.compose("experiment=decoy_bb84_mc", "engine.methods=[compare,nope]")
    with pytest.raises(ValidationError, match=r"engine\.methods = .*must be None or \(categorical, histogram\)"):
        cli.prepare(cfg)
    go = lambda methods: decoy_bb84_mc_rows(jax.random.key(1), lengths_km=[20.0], engines=("pulse",),  # noqa: E731
                                            n_pulses=2**16, chunk=2**20, methods=methods)
    with pytest.raises(ValidationError, match="methods"):  # the rows' engine gets them too
        go(("compare", "fused_typo"))
    counts = [np.array([r["n_detected"] for r in go(m)]) for m in (None, ("search_top", "onehot8"))]
    np.testing.assert_array_equal(counts[0], counts[1])
