"""Run outputs: atomic writes, the results table, metadata, and the key-rate figure."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from qmc import results  # noqa: E402
from qmc.plots import save  # noqa: E402
from qmc.plots.keyrate import key_rate_vs_distance  # noqa: E402


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "a.txt"
    results.write_text(path, "first")
    results.write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_atomic_write_keeps_the_previous_version(tmp_path):
    path = tmp_path / "a.txt"
    results.write_text(path, "complete")
    with pytest.raises(RuntimeError):
        with results.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_results_table_grows_chunk_by_chunk_and_round_trips(tmp_path):
    path = tmp_path / "results.csv"
    table = results.ResultsTable(path, ("length_km", "analysis", "key_rate", "mu"))
    table.append([])
    assert path.read_text() == "length_km,analysis,key_rate,mu\n"
    table.append([{"length_km": 0.0, "analysis": "plob", "key_rate": math.inf}])
    assert len(results.read_results(path)) == 1  # the file on disk holds every finished chunk
    table.append([{"length_km": 1.0, "analysis": "infinite_decoy", "key_rate": 1.2345678901234567e-3, "mu": 0.5}])
    rows = results.read_results(tmp_path)
    assert rows[0] == {"length_km": 0.0, "analysis": "plob", "key_rate": math.inf, "mu": None}
    assert rows[1]["key_rate"] == 1.2345678901234567e-3  # full precision
    assert "inf" in path.read_text().splitlines()[1]
    with pytest.raises(KeyError, match="typo"):
        table.append([{"typo": 1.0}])


def test_metadata_is_json_with_versions_and_device(tmp_path):
    env = results.environment()
    for key in ("qmc_version", "jax_version", "device", "python_version", "git_commit"):
        assert key in env
    results.write_json(tmp_path / "metadata.json", {"wall_time_s": 1.5, "bound": math.inf, **env})
    data = json.loads((tmp_path / "metadata.json").read_text())
    assert data["bound"] == "inf" and data["wall_time_s"] == 1.5
    assert results.read_metadata(tmp_path)["jax_version"] == env["jax_version"]
    assert results.read_metadata(tmp_path / "missing") == {}


def test_git_commit_is_none_outside_a_work_tree(tmp_path):
    assert results.git_commit(tmp_path) is None


def test_key_rate_figure_leaves_off_zero_and_infinite_points(tmp_path):
    rows = []
    for length in (0.0, 10.0, 20.0, 30.0):
        plob = math.inf if length == 0 else 1.0 / (1 + length)
        decoy = 1e-3 * 10 ** (-length / 10) if length < 30 else 0.0
        rows.append({"length_km": length, "analysis": "plob", "key_rate": plob})
        rows.append({"length_km": length, "analysis": "infinite_decoy", "key_rate": decoy})
        rows.append({"length_km": length, "analysis": "custom", "key_rate": 1e-5})
    fig = key_rate_vs_distance(rows)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines["PLOB bound (repeaterless)"].get_xdata()) == 3  # inf at 0 km left off
    assert len(lines["Infinite decoy states"].get_xdata()) == 3  # zero at 30 km left off
    assert "custom" in lines
    png, pdf = save(fig, tmp_path / "figure")
    assert png.stat().st_size > 1000 and pdf.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.pdf", "figure.png"]
