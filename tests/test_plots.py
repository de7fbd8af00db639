"""Figures of every study, drawn from synthetic rows (no simulation): saved width, title, labels,
and legends that hide no data.

The rows follow each study's columns (``qmc/studies/*.py``) with plausible values; the key-rate rows
are the GLLP closed forms on the GYS system (Lo, Ma, Chen 2005, Fig. 1), where an in-axes legend
in the upper right covers the PLOB and single-photon curves between 90 and 150 km.
"""

from __future__ import annotations

import math
import struct

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import StepPatch  # noqa: E402

from qmc import studies  # noqa: E402
from qmc.plots import save  # noqa: E402
from qmc.plots.style import HELPER  # noqa: E402

MIN_WIDTH_PX = 1200
LONG_TITLE = ("system snspd_zadeh2017 · detector snspd (p_dark = 1e-8, efficiency 0.8) · protocol two decoys "
              "(mu = 0.5, 0.1, 2e-4) · analysis finite_lim2014 (block size 1e9, eps_sec 1e-10) · seed 0")


# ------------------------------------------------------------------------------------------------
# Synthetic rows, one builder per study
# ------------------------------------------------------------------------------------------------

def _h2(p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -p * np.log2(p) - (1 - p) * np.log2(1 - p)


def key_rate_rows():
    """GLLP rates on the GYS system (0.21 dB/km, eta_Bob 4.5 %, Y0 1.7e-6, e_d 3.3 %), 0..200 km."""
    lengths = np.arange(0.0, 201.0, 1.0)
    t = 10 ** (-0.021 * lengths)
    eta, y0, ed, f, mu = 0.045 * t, 1.7e-6, 0.033, 1.22, 0.48
    y1 = y0 + eta
    e1 = (0.5 * y0 + ed * eta) / y1
    q_mu = y0 + 1 - np.exp(-eta * mu)
    e_mu = (0.5 * y0 + ed * (1 - np.exp(-eta * mu))) / q_mu
    q1 = y1 * mu * np.exp(-mu)
    rates = {
        "infinite_decoy": 0.5 * (q1 * (1 - _h2(e1)) - q_mu * f * _h2(e_mu)),
        "single_photon": 0.5 * y1 * (1 - (1 + f) * _h2(e1)),
        "plob": np.where(lengths > 0, -np.log2(np.maximum(1 - t, 1e-300)), math.inf),
    }
    rates["vacuum_weak"] = np.where(lengths <= 139, 0.93 * rates["infinite_decoy"], 0.0)
    rates["no_decoy"] = np.where(lengths <= 40, 1.5e-4 * t * np.maximum(1 - lengths / 41, 0) ** 2, 0.0)
    return [{"length_km": float(x), "analysis": name, "key_rate": float(max(r[i], 0.0)) if np.isfinite(r[i]) else math.inf}
            for name, r in rates.items() for i, x in enumerate(lengths)]


def mc_rows():
    """decoy_bb84_mc: exact, block and pulse engines, three intensities, 0..100 km."""
    rows = []
    rng = np.random.default_rng(0)
    for length in (0.0, 25.0, 50.0, 75.0, 100.0):
        eta = 0.045 * 10 ** (-0.021 * length)
        for engine in ("exact", "block", "pulse"):
            rate_exact = 1e-3 * 10 ** (-0.021 * length)
            noise = 0.0 if engine == "exact" else rng.normal(0, 0.02)
            for k, mu in enumerate((0.48, 0.1, 0.0)):
                g = 1.7e-6 + 1 - math.exp(-eta * mu)
                gain = g * (1 + noise)
                half = 0.0 if engine == "exact" else 0.05 * gain
                rows.append(dict(length_km=length, engine=engine, path="" if engine == "exact" else "fast",
                                 intensity_index=k, intensity=mu, class_probability=(0.8, 0.1, 0.1)[k], basis="Z",
                                 n_pulses=0 if engine == "exact" else 10**8, n_sent=0, n_detected=0, gain=gain,
                                 gain_stderr=half / 2, gain_lo=gain - half, gain_hi=gain + half, gain_exact=g,
                                 qber=0.03, qber_stderr=0.001, qber_exact=0.03, key_rate=rate_exact * (1 + noise),
                                 key_rate_stderr=0.05 * rate_exact, key_rate_lo=rate_exact * (0.9 + noise),
                                 key_rate_hi=rate_exact * (1.1 + noise), key_rate_exact=rate_exact,
                                 key_rate_reason="", confidence=0.95, seconds=0.1))
    return rows


def finite_rows():
    """finite_lim2014: one curve per block size 1e4..1e9 and the asymptotic one (block inf)."""
    rows = []
    for block, reach in [(1e4, 60.0), (1e5, 110.0), (1e6, 140.0), (1e7, 160.0), (1e8, 172.0), (1e9, 180.0),
                         (math.inf, 188.0)]:
        analysis = "finite_lim2014" if math.isfinite(block) else "asymptotic_two_decoy"
        for length in np.arange(0.0, 205.0, 5.0):
            rate = 1e-3 * 10 ** (-0.02 * length) * max(1 - length / reach, 0.0)
            rows.append(dict(analysis=analysis, block_size=block, length_km=float(length), key_rate=rate,
                             max_distance_km=reach))
    return rows


def ratio_rows():
    """one_vs_two_decoy: ratio versus block size at 50 and 100 km, without and with afterpulsing."""
    rows = []
    for length in (50.0, 100.0):
        for model, p_ap in (("exact", 0.0), ("lim2014", 0.04)):
            for block in np.geomspace(1e4, 1e12, 17):
                two = 1e-4 * (1 - 3 / math.log10(block)) * 10 ** (-length / 100)
                ratio = (1.3 - 0.04 * math.log10(block)) * (0.6 if p_ap else 1.0)
                rows.append(dict(length_km=length, block_size=float(block), model=model, p_afterpulse=p_ap,
                                 rate_one_decoy=ratio * two, rate_two_decoy=two, ratio=ratio))
    return rows


def histogram_rows():
    """finite_key_mc: summary and histogram rows for two rules at four (length, block) points."""
    rows = []
    rng = np.random.default_rng(1)
    for length in (50.0, 100.0):
        for block in (1e5, 1e7):
            expected = block * (0.2 if length == 50 else 0.1)
            for rule, shift in (("until_full", 0.0), ("fixed_pulses", -0.02)):
                bits = rng.normal(expected * (1 + shift), 0.03 * expected, 2000)
                common = dict(length_km=length, block_size=block, rule=rule, n_sessions=2000)
                rows.append(dict(common, kind="summary", key_length_expected=expected,
                                 key_length_median=float(np.median(bits)), abort_probability=0.01))
                counts, edges = np.histogram(bits, bins=40)
                rows.extend(dict(common, kind="histogram", bin_lo=float(edges[j]), bin_hi=float(edges[j + 1]),
                                 count=int(counts[j])) for j in range(40))
    return rows


def optimize_rows(with_dead_analysis=False):
    """optimize_link: Lim's finite key (mu3 fixed) and its asymptotic variant, 0..150 km."""
    rows = []
    for analysis, free, reach in (("finite_lim2014", "mu1 mu2 p_mu1 p_mu2 p_z", 140.0),
                                  ("asymptotic_two_decoy", "mu1 mu2 mu3 p_mu1 p_mu2 p_mu3 p_z", 180.0)):
        for length in np.arange(0.0, 175.0, 25.0):
            rate = 1e-3 * 10 ** (-0.02 * length) * max(1 - length / reach, 0.0)
            rows.append(dict(analysis=analysis, length_km=float(length), key_rate=rate, free=free,
                             mu1=0.5 - length / 1000, mu2=0.1 + length / 5000, mu3=2e-4, p_mu1=0.7, p_mu2=0.2,
                             p_mu3=0.1, p_z=0.9 - length / 2000))
    if with_dead_analysis:  # an analysis without a key anywhere, and one without free probabilities
        rows.extend(dict(analysis="finite_rusca2018", length_km=float(x), key_rate=0.0, free="mu1", mu1=0.5)
                    for x in (0.0, 50.0))
    return rows


def afterpulsing_rows():
    """afterpulsing: the values of the default run (2048 x 2048 gates), with the vacuum class
    holding one detection at p_ap = 0."""
    rows = []
    for p_ap in (0.0, 0.02, 0.04, 0.08, 0.12):
        for k, mu, gain in ((0, 0.48, 6.4e-3), (1, 0.1, 1.3e-3), (2, 0.0, 1.7e-6)):
            n_sent = int(4.2e6 * (0.2, 0.025, 0.025)[k])
            sim = gain * (1 + p_ap) + (30 * p_ap * 6.4e-3 / 8 if k else 0.0) + (0.0 if k < 2 or p_ap else 8e-6)
            n_detected = int(round(sim * n_sent))
            rows.append(dict(length_km=25.0, p_afterpulse=p_ap, k=k, mu=mu, gain_approx=gain * (1 + p_ap),
                             gain_sim=n_detected / n_sent, gain_sim_stderr=math.sqrt(max(n_detected, 1)) / n_sent,
                             qber_approx=0.5 if k == 2 else 0.033 + p_ap / 2,
                             qber_sim=1.0 if n_detected == 1 else (0.45 if k == 2 else 0.035 + p_ap),
                             qber_sim_stderr=0.0 if n_detected == 1 else 0.01, n_sent=n_sent, n_detected=n_detected,
                             model_rate=p_ap > 0))
    return rows


ROWS = {
    "key_rate_vs_distance": key_rate_rows,
    "decoy_bb84_mc": mc_rows,
    "finite_lim2014": finite_rows,
    "one_vs_two_decoy": ratio_rows,
    "finite_key_mc": histogram_rows,
    "optimize_link": optimize_rows,
    "afterpulsing": afterpulsing_rows,
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------------------------
# What a figure holds: legends, plotted points in display coordinates, labels
# ------------------------------------------------------------------------------------------------

def _legends(fig) -> list[Legend]:
    """Every legend of ``fig``: of its axes, of the figure and of its subfigures."""
    return list(dict.fromkeys(fig.findobj(Legend)))


def _legend_entries(fig) -> tuple[set[str], list]:
    """Entry texts and handles of every legend of ``fig``."""
    texts, handles = set(), []
    for legend in _legends(fig):
        texts.update(t.get_text() for t in legend.get_texts())
        handles.extend(legend.legend_handles)
    return texts, handles


def _densify(xy: np.ndarray, step_px: float = 2.0) -> np.ndarray:
    """Points every ``step_px`` along the polyline ``xy`` (display space, NaN-separated parts)."""
    out = []
    for a, b in zip(xy[:-1], xy[1:]):
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        n = max(int(np.hypot(*(b - a)) / step_px), 1)
        out.append(a + np.linspace(0.0, 1.0, n + 1)[:, None] * (b - a))
    out.append(xy[np.isfinite(xy).all(axis=1)])
    return np.concatenate(out) if out else np.zeros((0, 2))


def _data_points(ax) -> np.ndarray:
    """Every drawn point of ``ax``'s lines, collections (error bars) and step patches, in pixels,
    within the axes' clip box."""
    parts = []
    for line in ax.lines:
        if line.get_visible() and len(line.get_xydata()):
            xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
            parts.append(_densify(xy) if line.get_linestyle() not in ("None", "none", "", " ") else xy)
    for coll in ax.collections:
        if coll.get_visible():
            for path in coll.get_paths():
                parts.append(_densify(coll.get_transform().transform(path.vertices)))
    for patch in ax.patches:
        if isinstance(patch, StepPatch) and patch.get_visible():
            parts.append(_densify(patch.get_transform().transform(patch.get_path().vertices)))
    if not parts:
        return np.zeros((0, 2))
    xy = np.concatenate(parts)
    box = ax.get_window_extent()
    inside = (xy[:, 0] >= box.x0 - 1) & (xy[:, 0] <= box.x1 + 1) & (xy[:, 1] >= box.y0 - 1) & (xy[:, 1] <= box.y1 + 1)
    return xy[inside]


def _covered(artist_style: dict, label: str, texts: set[str], handles: list) -> bool:
    """A plotted artist is explained by the legend: its label is an entry, or each of its style
    keys (colour, line style, marker) is the key of some legend entry (proxy legends)."""
    if label in texts:
        return True

    def style_of(h):
        if isinstance(h, Line2D):
            return dict(color=matplotlib.colors.to_hex(h.get_color()), ls=h.get_linestyle(), marker=h.get_marker())
        return {}

    keys = [style_of(h) for h in handles]
    return all(any(k.get(name) == value for k in keys) for name, value in artist_style.items())


def _unexplained(fig) -> list[str]:
    texts, handles = _legend_entries(fig)
    missing = []
    for ax in fig.axes:
        in_containers = set()
        for c in ax.containers:
            if isinstance(c, ErrorbarContainer):
                data_line = c.lines[0]
                in_containers.update(c.get_children())
                if data_line is None or data_line.get_gid() == HELPER:
                    continue
                style = dict(color=matplotlib.colors.to_hex(data_line.get_color()), marker=data_line.get_marker())
                if not _covered(style, c.get_label(), texts, handles):
                    missing.append(f"errorbar {c.get_label()!r} in {ax.get_ylabel()!r}")
        for line in ax.lines:
            if line in in_containers or not line.get_visible() or line.get_gid() == HELPER:
                continue
            if not np.isfinite(np.asarray(line.get_xydata(), float)).any():
                continue
            label = line.get_label()
            style = dict(color=matplotlib.colors.to_hex(line.get_color()), ls=line.get_linestyle(),
                         marker=line.get_marker())
            if not _covered(style, label, texts, handles):
                missing.append(f"line {label!r} in {ax.get_ylabel()!r}")
        for patch in ax.patches:
            if isinstance(patch, StepPatch) and patch.get_label() not in texts:
                missing.append(f"histogram {patch.get_label()!r}")
    return missing


def _draw(name, **kwargs):
    fig = studies.get(name).draw(ROWS[name](), **kwargs)
    fig.canvas.draw()
    return fig


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bbox", [None, "tight"])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_saved_png_is_publication_width(name, bbox, tmp_path):
    """At the default dpi, whether saving keeps the canvas or crops it (``savefig.bbox``)."""
    fig = _draw(name, title="system gys2004 · analysis asymptotic")
    with matplotlib.rc_context({"savefig.bbox": bbox}):
        png, pdf = save(fig, tmp_path / name)
    width, height = _png_size(png)
    assert width >= MIN_WIDTH_PX and height >= 600, (width, height)
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_single_histogram_panel_is_publication_width(tmp_path):
    rows = [r for r in histogram_rows() if (r["length_km"], r["block_size"]) == (50.0, 1e5)]
    fig = studies.get("finite_key_mc").draw(rows)
    with matplotlib.rc_context({"savefig.bbox": "tight"}):
        png, _ = save(fig, tmp_path / "one")
    assert _png_size(png)[0] >= MIN_WIDTH_PX


def test_style_saves_at_300_dpi():
    from qmc.plots import RC_PARAMS

    assert RC_PARAMS["savefig.dpi"] == 300


@pytest.mark.parametrize("name", sorted(ROWS))
def test_title_is_drawn_inside_the_figure_and_clear_of_the_panels(name):
    fig = _draw(name, title=LONG_TITLE)
    candidates = list(fig.texts) + [ax.title for ax in fig.axes] + [getattr(fig, "_suptitle", None)]
    drawn = [t for t in candidates if t is not None and " ".join(t.get_text().split()) == LONG_TITLE]
    assert drawn, "title not found"
    renderer = fig.canvas.get_renderer()
    box = drawn[0].get_window_extent(renderer)
    canvas = fig.bbox
    assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1 and box.y1 <= canvas.y1 + 1, (box, canvas)
    assert drawn[0].get_fontsize() <= 9.5
    for ax in fig.axes:
        if ax.get_visible() and ax.axison:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"title overlaps panel {ax.get_ylabel()!r}"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_no_title_without_one(name):
    fig = _draw(name)
    texts = [fig.get_suptitle()] + [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]
    assert not any("system" in t for t in texts), texts


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_plotted_line_is_explained_by_a_legend(name):
    fig = _draw(name)
    assert _legends(fig), "no legend"
    assert _unexplained(fig) == []


@pytest.mark.parametrize("name", sorted(ROWS))
def test_legends_hide_no_data(name):
    fig = _draw(name)
    for legend in _legends(fig):
        box = legend.get_window_extent()
        for ax in fig.axes:
            xy = _data_points(ax)
            hidden = (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)
            assert not hidden.any(), f"legend {[t.get_text() for t in legend.get_texts()][:3]} covers " \
                                     f"{int(hidden.sum())} points of {ax.get_ylabel()!r}"


def test_key_rate_legend_clear_of_plob_and_single_photon_at_90_to_150_km():
    fig = _draw("key_rate_vs_distance")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"PLOB bound (repeaterless)", "Ideal single-photon source"} <= set(lines)
    for legend in _legends(fig):
        box = legend.get_window_extent()
        for label in ("PLOB bound (repeaterless)", "Ideal single-photon source"):
            x, y = lines[label].get_data()
            sel = (x >= 90) & (x <= 150)
            xy = ax.transData.transform(np.column_stack([x[sel], y[sel]]))
            inside = (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)
            assert not inside.any(), label


def test_key_rate_legend_in_a_callers_axes_stays_outside_the_data():
    fig, ax = plt.subplots()
    studies.get("key_rate_vs_distance").draw(key_rate_rows(), ax=ax)
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None and not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_optimize_legend_names_are_readable_and_no_panel_is_empty():
    fig = studies.get("optimize_link").draw(optimize_rows(with_dead_analysis=True))
    texts, _ = _legend_entries(fig)
    titles = {lg.get_title().get_text() for lg in _legends(fig)}
    assert "Finite key (Lim 2014)" in texts and "Asymptotic, two decoys" in texts
    assert not any("_" in t for t in texts if "$" not in t), texts  # mathtext subscripts aside
    assert any("Rusca 2018" in t for t in titles), titles  # said, not drawn: no key anywhere
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.lines, f"empty panel {ax.get_ylabel()!r}"
    # Only the rate: no free parameter drawn, so only one panel
    only_rate = [dict(r, free="") for r in optimize_rows()]
    assert len([a for a in studies.get("optimize_link").draw(only_rate).axes if a.get_visible()]) == 1


def test_mc_error_bars_are_explained():
    fig = _draw("decoy_bb84_mc")
    texts, _ = _legend_entries(fig)
    titles = " ".join(lg.get_title().get_text() for lg in _legends(fig))
    assert "95 % Wilson" in titles and "delta method" in titles, titles
    assert {r"$\mu_{1} = 0.48$", r"$\mu_{2} = 0.1$", r"$\mu_{3} = 0$"} <= texts, texts


def test_afterpulsing_marks_classes_with_few_counts():
    fig = _draw("afterpulsing")
    few = [r for r in afterpulsing_rows() if r["n_detected"] < 100]
    assert few  # the vacuum class at p_ap = 0
    open_points = [c for ax in fig.axes for c in ax.containers
                   if isinstance(c, ErrorbarContainer) and c.lines[0].get_markerfacecolor() == "none"]
    assert len(open_points) >= 2  # gain and QBER panels
    texts, _ = _legend_entries(fig)
    assert any("fewer than 100" in t for t in texts), texts
    labels = " ".join(ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes)
    assert r"$p_{\mathrm{ap}}$" in labels and "$" in fig.axes[0].get_ylabel()


def test_figures_draw_on_callers_axes_with_the_legend_outside_the_data():
    from qmc.plots import correlated, finite, keyrate, mc, optimize

    one_point = [r for r in histogram_rows() if (r["length_km"], r["block_size"]) == (50.0, 1e5)]
    cases = [(keyrate.key_rate_vs_distance, key_rate_rows(), "ax", 1), (finite.finite_key_vs_distance, finite_rows(), "ax", 1),
             (finite.ratio_vs_block_size, ratio_rows(), "ax", 1), (finite.key_length_histograms, one_point, "ax", 1),
             (mc.engines_vs_exact, mc_rows(), "axes", 2), (correlated.approximation_vs_simulation, afterpulsing_rows(), "axes", 2),
             (optimize.optimal_parameters_vs_distance, optimize_rows(), "ax", 3)]
    for function, rows, name, n in cases:
        fig, axes = plt.subplots(n, 1, squeeze=False)
        given = list(axes[:, 0]) if n > 1 else axes[0, 0]
        assert function(rows, **{name: given}, title="run A") is fig
        fig.canvas.draw()
        assert any("run A" in ax.get_title() for ax in fig.axes), function.__name__
        for legend in _legends(fig):
            for ax in fig.axes:
                assert not legend.get_window_extent().overlaps(ax.get_window_extent()), function.__name__
        plt.close(fig)
