"""qmc's backward Raman noise (a run of ``qmc experiment=smith2025_coexistence``) beside the measured
spectrum of published.csv: prints the table of README.md and draws figure.png.

    qmc experiment=smith2025_coexistence hydra.run.dir=/tmp/smith2025_coexistence_run plot.dpi=100
    python experiments/smith2025_raman/compare.py /tmp/smith2025_coexistence_run

The study's own figure (key rate versus distance) cannot show these points: qmc's overlay draws only
``key_rate`` and ``max_distance_km`` rows (and at these noise levels the key-rate figure is empty:
no key beyond 0 km), so this script draws the noise itself, from the run's
``results.csv`` (column ``raman_photons_per_s`` times h c / lambda, at the published fiber length).
"""

from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path

from qmc.channels.raman_spectrum import LIGHT_M_PER_S, PLANCK_J_S
from qmc.gallery import published_points

FOLDER = "smith2025_raman"
PUMP_NM = 1549.57  # conf/experiment/smith2025_coexistence.yaml, classical.wavelength_nm
SERIES = re.compile(r"q(\d+(?:\.\d+)?) P=([0-9.]+) dBm")


def qmc_power_dbm(run: Path) -> dict[tuple[str, float, float], float]:
    """(band plan, launch power dBm, length km) -> backward Raman power in Bob's filter, dBm."""
    out = {}
    with open(run / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            wavelength_m = float(row["band_plan"][1:]) * 1e-9
            watts = float(row["raman_photons_per_s"]) * PLANCK_J_S * LIGHT_M_PER_S / wavelength_m
            key = (row["band_plan"], float(row["launch_power_dbm"]), float(row["length_km"]))
            out[key] = 10.0 * math.log10(watts * 1e3) if watts > 0 else -math.inf
    return out


def table(run: Path) -> list[tuple]:
    model = qmc_power_dbm(run)
    rows = []
    for p in published_points(FOLDER):
        if p["quantity"] != "raman_power_dbm":
            continue
        wavelength, power = SERIES.fullmatch(p["series"]).groups()
        plan = f"q{wavelength}"
        q = model[(plan, float(power), p["x"])]
        rows.append((float(wavelength), float(power), p["value"], q, q - p["value"], p["tolerance"]))
    return rows


def main(run: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table(Path(run))
    print("| wavelength | launch | measured | qmc | qmc - measured | tolerance |")
    print("|---|---|---|---|---|---|")
    for w, p, meas, q, d, tol in rows:
        print(f"| {w:g} nm | {p:g} dBm | {meas:.2f} dBm | {q:.2f} dBm | {d:+.2f} dB | {'' if tol is None else f'{tol:g} dB'} |")
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    for power, colour in ((4.3, "tab:blue"), (14.0, "tab:red")):
        sel = sorted(r for r in rows if r[1] == power)
        for side in ([r for r in sel if r[0] < PUMP_NM], [r for r in sel if r[0] > PUMP_NM]):  # no line across the pump
            ax.plot([r[0] for r in side], [r[3] for r in side], "-", color=colour, lw=1.4,
                    label=f"qmc, {power:g} dBm" if side[0][0] > PUMP_NM else None)
        asserted = [r for r in sel if r[5] is not None]
        other = [r for r in sel if r[5] is None]
        if asserted:
            ax.errorbar([r[0] for r in asserted], [r[2] for r in asserted], yerr=[r[5] for r in asserted], fmt="o",
                        mfc="none", color=colour, capsize=2, label=f"measured, {power:g} dBm (compared, ±tolerance)")
        if other:
            ax.plot([r[0] for r in other], [r[2] for r in other], "s", mfc="none", color=colour, alpha=0.7,
                    label=f"measured, {power:g} dBm (reported only)")
    ax.axvline(PUMP_NM, color="0.6", ls=":", lw=1.0)
    ax.set_xlabel("Wavelength (nm); pump at 1549.57 nm (dotted)")
    ax.set_ylabel("Backward Raman power in 0.5 nm (dBm)")
    ax.set_title("20 km SMF, backward Raman: Smith & Proietti's measurement vs qmc", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(__file__).with_name("figure.png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
