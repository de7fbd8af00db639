"""Every code block of the README runs as written: the Python example, each `qmc` command (composed,
built and validated, the step before anything compiles), and the refusals it shows."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

import qmc
from qmc import cli

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, re.S)


def _commands() -> list[list[str]]:
    """The arguments of every `qmc` command in the README's bash blocks (continuations joined)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["qmc"]:
                out.append(words[1:])
    return out


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _first_job(args: list[str]) -> list[str]:
    """A multirun's first job: ``-m`` dropped, each swept value list cut to its first value."""
    if "-m" not in args:
        return args
    jobs = []
    for arg in args:
        if arg == "-m":
            continue
        key, _, value = arg.partition("=")
        jobs.append(f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else arg)
    return jobs


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes results/my_run
    (block,) = _blocks("python")
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert len(namespace["rows"]) == 201 * 3 and float(namespace["opt"].rate.rate) > 0
    run = tmp_path / "results" / "my_run"
    assert (run / "results.csv").is_file() and (run / "key_rate_vs_distance.png").is_file()
    estimate = namespace["estimate"]
    assert float(estimate.lo) <= float(namespace["rate"].rate) <= float(estimate.hi)


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "qmc")
def test_readme_commands_compose_build_and_validate(args):
    args = _first_job(args)
    if any(a.startswith("hydra/launcher=submitit") for a in args) and not _installed("hydra_plugins.hydra_submitit_launcher"):
        pytest.skip("needs the slurm extra (hydra-submitit-launcher)")
    if args == ["--help"]:
        out = subprocess.run([sys.executable, "-m", "qmc.cli", "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Config groups" in out.stdout
        return
    args = [a for a in args if a not in ("--cfg", "job")]
    cli.prepare(cli.compose(*args))  # validates every component and setting; compiles nothing


def test_readme_refusals_say_what_it_shows():
    shown = re.findall(r"^\$ qmc (.*)\nqmc: error: (.*)$", "\n".join(_blocks("text")), re.M)
    assert len(shown) >= 2
    for args, message in shown:
        with pytest.raises((cli.ConfigError, qmc.ValidationError)) as info:
            cli.prepare(cli.compose(*shlex.split(args)))
        assert str(info.value) == message


def _doc_tables():
    spec = importlib.util.spec_from_file_location("doc_tables", README.parent / "scripts" / "doc_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_optimize_doc_table_equals_the_studys_output():
    assert _doc_tables().main(["--check", "optimize_link"]) == 0


@pytest.mark.slow
def test_finite_key_mc_doc_table_equals_the_studys_output():
    assert _doc_tables().main(["--check", "finite_key_mc"]) == 0
