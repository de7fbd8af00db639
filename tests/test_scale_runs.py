"""Runs split across jobs and resumed: shards of a sweep (``sweep.shard_count``,
``sweep.shard_index``) merged by ``qmc-merge`` into the unsplit run's folder, a killed run resumed
(``resume=true``) computing only what it lacks, and the multirun through Hydra's submitit launcher
(the path of the README's SLURM command, run locally)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qmc import studies
from qmc.cli import runs
from qmc.results import read_metadata
from qmc.studies.plan import ChunkPlan
from qmc.validation import ValidationError

from test_cli import prepare, qmc_command

# Three lengths, one per chunk, a coarse mu grid: chunks 0 and 2 in shard 0, chunk 1 in shard 1.
SHORT = ["sweep.length_km.values=[0,40,80]", "optimize.mu.num=20", "sweep.chunk_size=1", "plot.dpi=50"]


def _raw(run_dir: Path) -> bytes:
    return (run_dir / "results.csv").read_bytes()


@pytest.fixture(scope="module")
def unsplit(tmp_path_factory) -> Path:
    """The unsplit run of SHORT, through the command."""
    run_dir = tmp_path_factory.mktemp("unsplit") / "run"
    result = qmc_command(*SHORT, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


def test_submitit_local_multirun_of_two_shards_merges_into_the_unsplit_run(unsplit, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the test extra installs it")
    sweep_dir = tmp_path / "multi"
    result = qmc_command("-m", "hydra/launcher=submitit_local", "sweep.shard_count=2", "sweep.shard_index=0,1",
                         *SHORT, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2  # one run folder per submitit job
    metas = [read_metadata(job) for job in jobs]
    by_shard = {m["shard"]["index"]: m for m in metas}
    assert all(m["status"] == "complete" and m["shard"]["count"] == 2 for m in metas)
    assert [c for c, _ in by_shard[0]["chunks"]] == [0, 2] and [c for c, _ in by_shard[1]["chunks"]] == [1]
    assert all(m["chunks_total"] == 3 for m in metas)
    assert all((job / "config.yaml").is_file() and not (job / "key_rate_vs_distance.png").exists() for job in jobs)
    assert all("qmc-merge draws the figure" in m["figure_note"] for m in metas)  # a shard's rows are a part
    assert metas[0]["config_digest"] == metas[1]["config_digest"] == read_metadata(unsplit)["config_digest"]

    out = tmp_path / "merged"
    runs.merge_main([*map(str, jobs), "--out", str(out)])
    assert _raw(out) == _raw(unsplit)  # the unsplit run's table, byte for byte
    merged = read_metadata(out)
    assert merged["status"] == "complete" and merged["rows"] == read_metadata(unsplit)["rows"]
    assert merged["chunks"] == read_metadata(unsplit)["chunks"]
    assert merged["title"] == read_metadata(unsplit)["title"]  # the shard keys are not in titles
    assert "shard_index: 0" in (out / "config.yaml").read_text() and (out / "key_rate_vs_distance.png").is_file()


def test_merge_refuses_a_missing_chunk_another_sweep_and_a_used_folder(unsplit, tmp_path, capsys):
    piece = tmp_path / "piece"
    shutil.copytree(unsplit, piece)
    meta = read_metadata(piece)
    meta["chunks"] = meta["chunks"][:2]  # as a shard that stopped before its last chunk
    (piece / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(runs.MergeError, match=r"chunks 2 of 3 are in none of the folders"):
        runs.merge([piece], tmp_path / "out1")
    with pytest.raises(runs.MergeError, match=r"chunk 0 is in both"):
        runs.merge([piece, unsplit], tmp_path / "out2")
    other = tmp_path / "other"
    shutil.copytree(unsplit, other)
    meta = read_metadata(other)
    meta["config_digest"] = "0" * 64
    (other / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(runs.MergeError, match=r"another sweep than .* \(config_digest"):
        runs.merge([piece, other], tmp_path / "out3")
    with pytest.raises(SystemExit) as info:
        runs.merge_main([str(unsplit), "--out", str(piece)])
    assert info.value.code == 2 and "exists and is not empty" in capsys.readouterr().err


def test_resume_computes_only_the_chunks_a_killed_run_lacks(unsplit, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(unsplit, run_dir)
    meta = read_metadata(run_dir)
    first = meta["chunks"][0][1]
    meta.update(chunks=meta["chunks"][:1], rows=first, status="interrupted")  # killed in its second chunk ...
    (run_dir / "metadata.json").write_text(json.dumps(meta))
    lines = _raw(unsplit).decode().splitlines(keepends=True)
    (run_dir / "results.csv").write_text("".join(lines[: 1 + first + 2]) + "40.0,infinite_de")  # ... mid-write
    result = qmc_command(*SHORT, f"hydra.run.dir={run_dir}", "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _raw(run_dir) == _raw(unsplit)
    meta = read_metadata(run_dir)
    assert meta["status"] == "complete" and meta["resumed"] == {"rows": first, "chunks": 1}
    assert meta["chunks"] == read_metadata(unsplit)["chunks"]
    assert "resuming" in (run_dir / "qmc.log").read_text()

    # Another config is refused with the keys that differ, and the folder stays as it is.
    result = qmc_command(*SHORT, "analysis.f_ec=1.1", f"hydra.run.dir={run_dir}", "resume=true", cwd=tmp_path)
    assert result.returncode == 2 and "cannot be resumed: its config differs (analysis.f_ec = 1.22 there, 1.1 now" \
        in result.stderr
    assert _raw(run_dir) == _raw(unsplit)


def test_a_study_computes_only_the_chunks_its_plan_wants():
    cfg, spec, _ = prepare(*SHORT)
    study = studies.STUDIES["key_rate_vs_distance"]
    every = list(study.run(spec))
    spec[studies.plan.PLAN_KEY] = ChunkPlan(shard_count=2, shard_index=0, done=frozenset({2}))
    some = list(study.run(spec))
    assert [c.index for c in some] == [0] and some[0].rows == every[0].rows  # the same numbers, bit for bit


def test_resume_onto_another_study_or_shard_is_refused(tmp_path):
    _, spec, chunks = prepare(*SHORT)
    study = studies.STUDIES["key_rate_vs_distance"]
    studies.execute(study, chunks, tmp_path, metadata={"config_digest": "a"}, figure=False, progress=False)
    with pytest.raises(ValidationError, match="its shard differs"):
        studies.resumable(tmp_path, study, {"config_digest": "a", "shard": {"count": 2, "index": 1}})
    with pytest.raises(ValidationError, match="holds a run of study key_rate_vs_distance, not afterpulsing"):
        studies.resumable(tmp_path, studies.get("afterpulsing"), {"config_digest": "a"})
    assert studies.resumable(tmp_path / "new", study, {"config_digest": "a"}) == {}  # nothing there: start afresh
    meta = read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    (tmp_path / "results.csv").write_text("length_km\n")  # a table that lost its rows
    with pytest.raises(ValidationError, match="cannot be resumed: .*its columns are not"):
        studies.execute(study, study.run(spec), tmp_path, metadata={"config_digest": "a"}, resume=True, figure=False,
                        progress=False)


@pytest.mark.parametrize("override, message", [
    ("sweep.shard_index=2", "sweep.shard_index = 2 is out of range: must be a whole number from 0 to "
                            "sweep.shard_count - 1 = 0"),
    ("sweep.shard_count=0", "sweep.shard_count = 0 is out of range: must be a whole number >= 1"),
])
def test_bad_shard_settings_are_refused_before_anything_compiles(override, message):
    with pytest.raises(ValidationError, match=message.replace(".", r"\.").replace("(", r"\(")):
        prepare(override)


def test_the_readmes_slurm_command_composes_with_the_slurm_extra():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra installs it")
    from hydra import compose, initialize_config_dir

    from qmc.cli import CONF_DIR

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("qmc -m hydra/launcher=submitit_slurm"))
    rest = readme[readme.index(line):].split("```")[0].replace("\\\n", " ").split()
    overrides = [o for o in rest[2:] if "," not in o]  # the swept choice aside: one job's config
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.timeout_min == 60
