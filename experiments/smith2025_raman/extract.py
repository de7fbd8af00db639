"""Read the backward Raman spectra of RAMAN_Charact.xlsx (jakessmith23/NetSquid_coexisting_Raman_noise,
blob 83eed182c61f04928f0e9239ece60950befd675a, first added in commit 9002a4d9c2b131acbd915f8fd2c7354b4ec5b864)
and print the points of published.csv and the band plans of conf/experiment/smith2025_coexistence.yaml.

    python experiments/smith2025_raman/extract.py RAMAN_Charact.xlsx

No spreadsheet library needed (the .xlsx is read as zipped XML). Per sheet, the columns are: A wavelength
(nm, 0.01 nm steps), B Conf0 (the pumps through circulator port 1 -> 2, i.e. the launch into the fiber,
dBm in the OSA's 0.5 nm RBW), C Conf1 (port 1 -> 3 with port 2 open: the floor), D Conf2 (port 3 with the
20 km fiber on port 2: backward light), E Conf3 (the fiber's far end), F alpha (dB/km). The backward
Raman power, as the workbook's own note defines it (SETUP sheet: "Power measured in Conf2 - Power measured
in Conf1"), is averaged over one RBW centred on each wavelength: mean(10^(D/10)) - mean(10^(C/10)) over
lambda +- 0.25 nm (51 samples), in mW, then dBm.
"""

from __future__ import annotations

import re
import sys
import zipfile

import numpy as np

SHEETS = {"Meas_1550_LP_DP": 4.3, "Meas_1550_HP_DP": 14.0}  # SETUP sheet, row "Pump Power" (dBm)
WAVELENGTHS = (1520, 1530, 1540, 1560, 1570, 1580, 1590, 1600, 1610, 1620, 1630, 1640)
HALF_WINDOW_NM = 0.25


def sheets(path):
    z = zipfile.ZipFile(path)
    book = z.read("xl/workbook.xml").decode()
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    target = dict(re.findall(r'Id="(rId\d+)"[^>]*Target="([^"]+)"', rels))
    out = {}
    for name, rid in re.findall(r'<sheet name="([^"]+)" sheetId="\d+" r:id="(rId\d+)"/>', book):
        if name not in SHEETS:
            continue
        xml = z.read("xl/" + target[rid]).decode()
        rows = []
        for body in re.findall(r'<row r="\d+"[^>]*>(.*?)</row>', xml)[1:]:
            cells = dict(re.findall(r'<c r="([A-F])\d+"[^>]*>(?:<f>[^<]*</f>)?<v>([^<]*)</v></c>', body))
            rows.append([float(cells.get(c, "nan")) for c in "ABCDEF"])
        out[name] = np.array(rows)
    return out


def main(path):
    for name, data in sheets(path).items():
        wl, b, c, d, alpha = data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 5]
        pump = wl[np.argmax(b)]
        print(f"# {name}: pump peak (Conf0) {b.max():.2f} dBm at {pump:.2f} nm, alpha there {alpha[np.argmax(b)]:.4f} dB/km")
        for w in WAVELENGTHS:
            m = np.abs(wl - w) <= HALF_WINDOW_NM + 1e-9
            on, floor = np.mean(10 ** (d[m] / 10)), np.mean(10 ** (c[m] / 10))
            print(f"{name},{w},{10 * np.log10(on - floor):.2f},{10 * np.log10(on / floor):.2f},"
                  f"{np.mean(alpha[m]):.4f},{m.sum()}")


if __name__ == "__main__":
    main(sys.argv[1])
