"""The qmc command: config composition, bad input, the `_target_` guard, runs, interruption."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import qmc
from qmc import cli, studies
from qmc.results import read_metadata, read_results

REPO = Path(__file__).resolve().parents[1]
CONF = Path(cli.CONF_DIR)
EXPERIMENTS = sorted(p.name[:-5] for p in (CONF / "experiment").iterdir() if p.name.endswith(".yaml"))
SYSTEMS = sorted(p.name[:-5] for p in (CONF / "system").iterdir() if p.name.endswith(".yaml"))
DETECTORS = sorted(p.name[:-5] for p in (CONF / "detector").iterdir() if p.name.endswith(".yaml"))
ANALYSES = ("infinite_decoy", "vacuum_weak", "no_decoy", "single_photon", "plob", "tgw")

# A short sweep: 3 lengths, a coarse mu grid, one chunk per length.
SHORT = ["sweep.length_km.values=[0,50,100]", "optimize.mu.num=40", "sweep.chunk_size=1"]


def config(*overrides: str):
    return cli.compose(*overrides)


def prepare(*overrides: str):
    """Compose, build, validate and create the study's chunk iterator (nothing compiled yet)."""
    cfg = config(*overrides)
    _, spec, chunks = cli.prepare(cfg)
    return cfg, spec, chunks


def qmc_command(*args: str, cwd: Path, env: dict | None = None, **kwargs):
    """Run `qmc` (as `python -m qmc.cli`, so the tests need no install) in ``cwd``."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               **(env or {})}
    command = [sys.executable, "-m", "qmc.cli", *args]
    if kwargs.pop("background", False):
        return subprocess.Popen(command, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300, **kwargs)


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def test_config_tree_is_the_repository_root_conf():
    assert CONF == REPO / "conf" and (CONF / "config.yaml").is_file()
    assert {"decoy_bb84_gys", "decoy_bb84_snspd"} <= set(EXPERIMENTS)
    assert {"gys2004", "snspd_zadeh2017"} <= set(SYSTEMS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_builds_and_validates(experiment):
    cfg, spec, chunks = prepare(f"experiment={experiment}")
    assert cfg.experiment_name == experiment
    assert cfg.study in studies.STUDIES
    if spec.get("channel") is not None:  # free-space studies build a link per slot of a pass instead
        assert isinstance(spec["link"], qmc.Link)
    assert isinstance(spec["protocol"], qmc.protocols.AbstractProtocol)
    if cfg.study == "key_rate_vs_distance":  # finite-key studies: tests/test_finite_studies.py
        assert set(spec["analysis"]["variants"]) == set(ANALYSES)
    assert hasattr(chunks, "__next__")  # validated; runs lazily


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_system_preset_composes_with_every_experiment(system, experiment):
    prepare(f"experiment={experiment}", f"system={system}")


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_builds(detector):
    _, spec, _ = prepare(f"detector={detector}")
    assert isinstance(spec["detector"], qmc.ThresholdDetectors)


def test_default_study_is_gys_with_the_papers_conventions():
    _, spec, _ = prepare()
    assert spec["experiment_name"] == "decoy_bb84_gys"
    det = spec["detector"]
    assert det.click_model == "ma2005"
    assert float(det.efficiency) == 0.045 and float(det.misalignment) == 0.033
    assert math.isclose(float(det.background_yield), 1.7e-6, rel_tol=1e-9)
    assert float(spec["channel"].loss_db_per_km) == 0.21
    assert all(float(a.f_ec) == 1.22 for k, a in spec["analysis"]["variants"].items() if k not in ("plob", "tgw"))
    p = spec["protocol"]
    np.testing.assert_array_equal(p.intensities, [0.48, 0.05, 0.0])
    np.testing.assert_array_equal(p.probabilities, [1.0, 0.0, 0.0])
    assert float(p.p_z) == 0.5 and p.key_basis == "both"
    lengths = spec["sweep"].axis("length_km")
    np.testing.assert_array_equal(lengths, np.arange(0.0, 201.0))


def test_system_preset_sets_detector_fiber_loss_and_f_ec_in_one_override():
    _, spec, _ = prepare("system=snspd_zadeh2017")
    assert spec["detector"].click_model == "threshold"
    assert float(spec["detector"].efficiency) == 0.92
    assert math.isclose(float(spec["detector"].p_dark), -math.expm1(-130.0 * 100e-12), rel_tol=1e-6)
    assert float(spec["channel"].loss_db_per_km) == 0.2
    assert float(spec["analysis"]["variants"]["vacuum_weak"].f_ec) == 1.16
    # A later value override still wins over the preset.
    _, spec, _ = prepare("system=gys2004", "analysis.f_ec=1.1", "detector.efficiency=0.1")
    assert float(spec["analysis"]["variants"]["no_decoy"].f_ec) == 1.1
    assert float(spec["detector"].efficiency) == 0.1


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming field, value and range, before anything compiles
# ---------------------------------------------------------------------------------------------

BAD = [
    ("detector.efficiency=1.5", "detector.efficiency = 1.5 is out of range: must be in [0, 1]"),
    ("detector.p_dark=-1e-6", "detector.p_dark = -1e-06 is out of range"),
    ("channel.length_km=-3", "channel.length_km = -3 is out of range: must be >= 0"),
    ("channel.loss_db_per_km=-0.2", "channel.loss_db_per_km = -0.2 is out of range: must be >= 0"),
    ("sweep.length_km.start=-5", "sweep.length_km[0] = -5 is out of range: must be >= 0"),
    ("protocol.probabilities=[1.5,0,0]", "protocol.probabilities[0] = 1.5 is out of range: must be in [0, 1]"),
    ("protocol.p_z=1.2", "protocol.p_z = 1.2 is out of range: must be in [0, 1]"),
    ("protocol.intensities=[0.05,0.48,0]", "protocol.intensities = [0.05 0.48 0.  ]: must be strictly decreasing"),
    ("analysis.f_ec=0.9", "analysis.f_ec = 0.9 is out of range: must be >= 1"),
    ("detector.efficiency=abc", "detector.efficiency = 'abc' is not a number"),
    ("optimize.mu.start=0", "optimize.mu.start = 0 is out of range"),
    ("protocol.intensities=[0.5,0.1]", "protocol.intensities = [0.5 0.1], protocol.probabilities"),
    ("plot.dpi=20", "plot.dpi = 20 is out of range: must be a whole number in [50, 1200]"),
    ("plot.dpi=72.5", "plot.dpi = 72.5 is out of range: must be a whole number in [50, 1200]"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_field_value_and_range(override, message):
    with pytest.raises(qmc.ValidationError) as info:
        prepare(override)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_vacuum_weak_needs_a_vacuum_decoy():
    with pytest.raises(qmc.ValidationError, match=r"vacuum_weak needs the last intensity to be 0 \(vacuum decoy\)"):
        prepare("protocol.intensities=[0.5,0.1,0.01]")


def test_unknown_study_and_engine_are_refused():
    with pytest.raises(qmc.ValidationError, match="study = nope: unknown; one of .*key_rate_vs_distance"):
        prepare("study=nope")
    with pytest.raises(qmc.ValidationError, match="engine = pulse"):
        prepare("engine=pulse")


def test_bad_input_exits_2_with_one_line_and_no_compilation(tmp_path):
    run_dir = tmp_path / "run"
    result = qmc_command("detector.efficiency=1.5", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                         env={"JAX_LOG_COMPILES": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == "qmc: error: detector.efficiency = 1.5 is out of range: must be in [0, 1]"
    assert "Traceback" not in result.stdout + result.stderr
    assert "Compiling" not in result.stdout + result.stderr
    assert not (run_dir / "results.csv").exists()


def test_unknown_option_gets_hydras_own_message(tmp_path):
    result = qmc_command("detector.nonsense=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not override 'detector.nonsense'" in result.stderr
    assert "Traceback" not in result.stderr


def test_adding_an_unknown_top_level_key_is_refused_and_leaves_no_folder(tmp_path):
    result = qmc_command("+foo=1", cwd=tmp_path, env={"JAX_LOG_COMPILES": "1"})
    assert result.returncode == 2
    assert result.stderr.startswith("qmc: error: +foo: unknown key foo; the top-level keys are analysis, ")
    assert ", channel, " in result.stderr and ", sweep, " in result.stderr
    assert result.stderr.count("\n") == 1 and "Compiling" not in result.stderr
    assert not (tmp_path / "results").exists()  # nor results/decoy_bb84_gys/, made for this run
    with pytest.raises(cli.ConfigError, match=r"^\+\+sweeps\.length_km\.values: unknown key sweeps; "):
        config("++sweeps.length_km.values=[0]")


def test_adding_a_key_that_qmc_reads_is_accepted():
    _, spec, _ = prepare("+check.n_sessions=0", "+sweep.block_size.values=[1e4]")  # Hydra needs the `+`
    assert spec["check"] == {"n_sessions": 0}
    np.testing.assert_array_equal(spec["sweep"].axis("block_size"), [1e4])
    cli.check_overrides(["+detector.command=true", "++mc.n_sessions=2", "+hydra.job.env_set.X=1", "seed=3"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiments_top_level_keys_are_known(experiment):
    assert set(config(f"experiment={experiment}")) <= cli.known_keys()


def test_a_refused_run_leaves_no_folder_and_keeps_what_was_there(tmp_path):
    result = qmc_command("channel.length_km=-1", f"hydra.run.dir={tmp_path / 'new' / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "qmc: error: channel.length_km = -1 is out of range: must be >= 0\n"
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor its parent `new`
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    result = qmc_command("channel.length_km=-1", f"hydra.run.dir={kept}", cwd=tmp_path)
    assert result.returncode == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # Hydra's .hydra/ and qmc.log removed


def test_a_refused_multirun_leaves_no_folder(tmp_path):
    sweep_dir = tmp_path / "multi"
    result = qmc_command("-m", "channel.length_km=-1,5", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.endswith("qmc: error: channel.length_km = -1 is out of range: must be >= 0\n")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------------


def test_help_lists_the_groups_their_options_and_the_common_keys(tmp_path):
    result = qmc_command("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("qmc: ")
    assert f"experiment: {', '.join(EXPERIMENTS)}" in lines  # listed by Hydra from conf/
    assert f"system: {', '.join(SYSTEMS)}" in lines and f"detector: {', '.join(DETECTORS)}" in lines
    assert any(line.strip().startswith("qmc -m ") for line in lines)
    assert "README.md" in result.stdout and not list(tmp_path.iterdir())
    start = next(i for i, line in enumerate(lines) if line.startswith("Common keys"))
    end = lines.index("", start)
    keys = [item.split("=")[0] for line in lines[start + 1:end] for item in line.strip().split("  ")[0].split()]
    assert {"sweep.length_km.values", "optimize.mu", "seed", "plot.dpi", "published", "hydra.run.dir"} <= set(keys)
    cfg = config()
    for key in keys:  # every key the help names is in the config
        if key.startswith(("hydra.", "+")):
            continue
        parent, _, leaf = key.rpartition(".")
        assert leaf in (OmegaConf.select(cfg, parent) if parent else cfg), key


# ---------------------------------------------------------------------------------------------
# Figure title and resolution
# ---------------------------------------------------------------------------------------------


def test_run_title_says_what_distinguishes_the_run():
    choices = {"experiment": "decoy_bb84_gys", "system": "gys2004", "detector": "snspd", "analysis": "asymptotic"}
    title = cli.run_title("decoy_bb84_gys", choices, ["detector=snspd", "analysis.f_ec=1.1", "plot.dpi=100",
                                                      "experiment=decoy_bb84_gys", "+check.n_sessions=0"])
    assert title == "decoy_bb84_gys · system=gys2004 · detector=snspd · analysis.f_ec=1.1 · check.n_sessions=0"
    assert cli.run_title("optimize_link", {"system": None}, []) == "optimize_link"


# ---------------------------------------------------------------------------------------------
# The `_target_` guard
# ---------------------------------------------------------------------------------------------

REFUSED = ["os.system", "builtins.eval", "subprocess.run", "qmc.cli.command.os.system", "qmc.detectors.threshold.math.sqrt",
           "qmc.results.write_text", "qmc.cli.main", "qmc.sweep.jax.jit"]


@pytest.mark.parametrize("target", REFUSED)
def test_target_outside_the_components_is_refused_before_anything_is_built(target, monkeypatch):
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a) or 0)
    with pytest.raises(cli.ConfigError, match=r"detector\._target_ = .* is not allowed"):
        prepare(f"detector._target_={target}", "+detector.command='echo pwned'")
    assert not called


def test_nested_targets_are_checked_too():
    with pytest.raises(cli.ConfigError, match=r"analysis\.variants\.plob\._target_ = os\.system"):
        prepare("analysis.variants.plob._target_=os.system")
    with pytest.raises(cli.ConfigError, match="no such qmc component"):
        prepare("detector._target_=qmc.detectors.NoSuchDetector")
    cli.check_targets({"a": [{"_target_": "qmc.channels.Fiber"}], "b": {"_target_": "qmc.Link"}})
    with pytest.raises(cli.ConfigError):
        cli.check_targets({"a": [{"b": {"_target_": "shutil.rmtree"}}]})


def test_target_refusal_exits_2_without_traceback(tmp_path):
    result = qmc_command("detector._target_=os.system", "+detector.command=true",
                         f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("qmc: error: detector._target_ = os.system is not allowed")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def test_cli_runs_a_short_sweep_into_hydra_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    result = qmc_command(*SHORT, "plot.dpi=100", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "results").exists()  # hydra.run.dir is honoured

    with open(run_dir / "results.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert list(raw[0]) == list(studies.KEY_RATE_COLUMNS)
    assert len(raw) == 3 * len(ANALYSES)
    assert {r["analysis"] for r in raw} == set(ANALYSES)
    plob_0 = next(r for r in raw if r["analysis"] == "plob" and float(r["length_km"]) == 0.0)
    assert plob_0["key_rate"] == "inf" and plob_0["mu"] == ""
    rows = read_results(run_dir)
    decoy = [r for r in rows if r["analysis"] == "infinite_decoy"]
    assert all(r["key_rate"] > 0 and 0 < r["mu"] <= 1 for r in decoy)
    assert all(r["reason"] == "ok" for r in decoy)
    assert all(r["mu"] is None for r in rows if r["analysis"] in ("plob", "tgw", "single_photon"))
    no_decoy_100 = next(r for r in rows if r["analysis"] == "no_decoy" and r["length_km"] == 100)
    assert no_decoy_100["key_rate"] == 0 and no_decoy_100["mu"] is None and no_decoy_100["reason"] != "ok"

    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["rows"] == len(raw)
    assert meta["chunks_done"] == meta["chunks_total"] == 3
    for key in ("qmc_version", "jax_version", "device", "seed", "wall_time_s", "git_commit", "experiment_name"):
        assert key in meta
    assert meta["experiment_name"] == "decoy_bb84_gys" and meta["study"] == "key_rate_vs_distance"
    assert "optimize.mu.num=40" in meta["overrides"]
    assert meta["title"] == "decoy_bb84_gys · system=gys2004 · " + " · ".join(SHORT) and meta["dpi"] == 100
    assert (run_dir / "config.yaml").read_text().count("loss_db_per_km: 0.21") == 1
    for suffix in (".png", ".pdf"):
        path = run_dir / f"key_rate_vs_distance{suffix}"
        assert path.stat().st_size > 1000
    assert png_dpi(run_dir / "key_rate_vs_distance.png") == 100
    assert not list(run_dir.glob(".*.tmp*"))  # no temporary files left behind

    # qmc-plot redraws the figure from the saved rows alone.
    for suffix in (".png", ".pdf"):
        (run_dir / f"key_rate_vs_distance{suffix}").unlink()
    cli.plot_main([str(run_dir)])
    assert (run_dir / "key_rate_vs_distance.png").exists() and (run_dir / "key_rate_vs_distance.pdf").exists()
    assert png_dpi(run_dir / "key_rate_vs_distance.png") == 100  # metadata's dpi


def test_multirun_writes_one_run_folder_per_job(tmp_path):
    # Two values of one leaf keep the test short (the second job reuses the compiled sweep);
    # structural choices (`-m system=gys2004,snspd_zadeh2017`) go through the same machinery.
    sweep_dir = tmp_path / "multi"
    result = qmc_command("-m", "analysis.f_ec=1.16,1.22", "sweep.length_km.values=[0,10]",
                         "optimize.mu.num=10", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = ["analysis.f_ec=1.16", "analysis.f_ec=1.22"]  # a job's folder: the overrides it sweeps
    metas = [read_metadata(sweep_dir / job) for job in jobs]
    assert [m["status"] for m in metas] == ["complete", "complete"]
    assert [m["overrides"][0] for m in metas] == jobs
    rates = [read_results(sweep_dir / job)[0]["key_rate"] for job in jobs]
    assert rates[0] > rates[1] > 0  # better error correction, more key


def test_multirun_job_folders_are_named_by_the_swept_overrides(tmp_path):
    sweep_dir = tmp_path / "multi"
    result = qmc_command("-m", "system=gys2004,snspd_zadeh2017", "sweep.length_km.values=[0,50]", "optimize.mu=null",
                         f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["multirun.yaml", "system=gys2004", "system=snspd_zadeh2017"]
    meta = read_metadata(sweep_dir / "system=snspd_zadeh2017")
    assert meta["status"] == "complete"
    title = "decoy_bb84_gys · system=snspd_zadeh2017 · sweep.length_km.values=[0,50] · optimize.mu=null"
    assert meta["title"] == title


def test_job_folder_names(monkeypatch):
    monkeypatch.setattr(cli.folders, "_SWEPT", {"system", "analysis.f_ec"})
    assert cli.job_folder(["system=lim2014", "optimize.mu=null", "analysis.f_ec=1.1"], 3) == \
        "system=lim2014,analysis.f_ec=1.1"
    assert cli.job_folder(["optimize.mu=null"], 3) == "3"  # sweeps nothing: the job's number
    assert cli.job_folder(["system=a/b"], 0) == "system=a_b"  # one folder, never a path
    long = cli.job_folder([f"system={'x' * 300}"], 7)
    assert long.startswith("7_system=xxx") and len(long) <= 200
    monkeypatch.setattr(cli.folders, "_SWEPT", None)  # swept keys unknown: every override but Hydra's
    assert cli.job_folder(["optimize.mu=null", "hydra.verbose=true"], 0) == "optimize.mu=null"


def png_dpi(path: Path) -> int:
    """The resolution a PNG records (its pHYs chunk: pixels per metre)."""
    data = path.read_bytes()
    at = data.index(b"pHYs") + 4
    return round(int.from_bytes(data[at:at + 4], "big") * 0.0254)


def test_plot_main_reports_a_missing_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.plot_main([str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("qmc-plot: error:")


# ---------------------------------------------------------------------------------------------
# Interruption
# ---------------------------------------------------------------------------------------------


def test_interrupted_sweep_keeps_its_finished_chunks(tmp_path):
    _, spec, chunks = prepare(*SHORT)
    study = studies.STUDIES["key_rate_vs_distance"]

    def interrupted_after_two():
        for chunk in chunks:
            if chunk.index == 2:
                raise KeyboardInterrupt  # as Ctrl-C during the third chunk
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        studies.execute(study, interrupted_after_two(), tmp_path, progress=False)
    rows = read_results(tmp_path)
    assert len(rows) == 2 * len(ANALYSES)
    assert sorted({r["length_km"] for r in rows}) == [0.0, 50.0]
    meta = read_metadata(tmp_path)
    assert meta["status"] == "interrupted" and meta["rows"] == len(rows) and meta["chunks_done"] == 2
    assert not (tmp_path / "key_rate_vs_distance.png").exists()
    assert not list(tmp_path.glob(".*.tmp*"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_cli_sweep_keeps_complete_chunks(tmp_path, signum):
    # Ctrl-C, and what `timeout`, `kill` and a batch system's time limit send
    run_dir = tmp_path / "run"
    proc = qmc_command("sweep.chunk_size=1", "optimize.mu.num=2000", f"hydra.run.dir={run_dir}",
                       cwd=tmp_path, background=True)
    results = run_dir / "results.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 2):
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and signal.Signals(signum).name in err
    rows = read_results(run_dir)
    assert 0 < len(rows) < 201 * len(ANALYSES) and len(rows) % len(ANALYSES) == 0
    meta = read_metadata(run_dir)
    assert meta["status"] == "interrupted" and meta["rows"] == len(rows)
    assert "interrupted (" in (run_dir / "qmc.log").read_text()


def test_afterpulsing_experiment_rows_and_bad_probability():
    """`qmc experiment=afterpulsing`: approximation beside simulation per p_ap and intensity,
    labelled model rates where the detectors have memory; a p_ap above 1 is refused first."""
    small = ["experiment=afterpulsing", "streams.n_streams=64", "streams.n_gates=64", "streams.burn_in_gates=16",
             "sweep.p_afterpulse.values=[0,0.1]"]
    _, spec, chunks = prepare(*small)
    rows = [r for chunk in chunks for r in chunk.rows]
    assert len(rows) == 2 * 3 and set(rows[0]) >= set(studies.get("afterpulsing").columns)
    assert [r["model_rate"] for r in rows] == [False] * 3 + [True] * 3
    assert all(r["length_km"] == 25.0 and r["afterpulse_decay_gates"] == 10.0 for r in rows)
    with pytest.raises(qmc.ValidationError, match=r"detector.p_afterpulse = 1.5 is out of range"):
        prepare(*small[:-1], "sweep.p_afterpulse.values=[0,1.5]")


def test_optimize_link_solver_is_a_checked_config_value():
    prepare("experiment=optimize_link", "optimize.solver=lbfgs")  # accepted (nothing compiled yet)
    prepare("experiment=optimize_link", "optimize.solver=adam", "optimize.solver_options={learning_rate: 0.05}")
    with pytest.raises(qmc.ValidationError, match="optimize.solver = newton: not 'bfgs' nor a transformation of optax"):
        prepare("experiment=optimize_link", "optimize.solver=newton")
    with pytest.raises(qmc.ValidationError, match="optimize.solver = adam: .*learning_rate"):
        prepare("experiment=optimize_link", "optimize.solver=adam")


@pytest.mark.parametrize("detector", ["gys2004", "lim2014", "snspd", "threshold"])
def test_detector_memory_is_a_key_of_every_detector_config(detector):
    # detector.p_afterpulse=0.04 works without Hydra's `+`, and the defaults are memoryless
    _, spec, _ = prepare(f"detector={detector}")
    d = spec["detector"]
    assert (d.p_afterpulse, d.afterpulse_decay_gates, d.dead_time_gates, d.dead_time_mode) == (0.0, 1.0, 0.0, "common")
    _, spec, _ = prepare(f"detector={detector}", "detector.p_afterpulse=0.04", "detector.dead_time_gates=10",
                         "detector.dead_time_mode=per_detector", "detector.afterpulse_decay_gates=5")
    d = spec["detector"]
    assert (d.p_afterpulse, d.afterpulse_decay_gates, d.dead_time_gates, d.dead_time_mode) == (0.04, 5.0, 10.0, "per_detector")
