"""The Python API page (docs/python_api.md) runs as written, and its numbers hold."""

import pathlib
import re

import numpy as np
import pytest

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


@pytest.fixture(scope="module")
def page():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    return namespace


def test_python_api_page_runs_and_its_numbers_hold(page):
    out, opt, protocol = page["out"], page["opt"], page["protocol"]
    # the rate at N equals the rate at the n_X it implies
    assert float(page["by_pulses"].key_rate(page["link"], protocol).rate) == pytest.approx(float(out.rate), rel=1e-12)
    assert float(out.rate) == pytest.approx(1.487e-3, rel=1e-3)
    # the optimum beats the start and is what the page prints
    assert bool(opt.found) and float(opt.rate.rate) == pytest.approx(1.789e-3, rel=1e-3)
    rates = np.asarray(page["sweep"].rate.rate)
    assert rates[0] == pytest.approx(0.01833, rel=1e-3) and np.all(np.diff(rates) < 0)
    assert bool(page["check"]["agrees"])
