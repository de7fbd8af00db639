"""Run outputs: a tidy ``results.csv``, ``metadata.json`` and files written atomically.

Every file but the table is written under a temporary name in the same folder, flushed to disk
and renamed over the target (``os.replace`` is atomic on POSIX and Windows), so a reader never
sees a half-written file and a run killed at any moment leaves the previous complete version.
:class:`ResultsTable` appends each chunk of a sweep to ``results.csv`` in one write and flushes it
to disk (what is on disk is never rewritten: the cost of a chunk does not grow with the sweep);
an interrupted sweep keeps every chunk it finished, and :func:`read_results` leaves out a last
line cut short by a kill in the middle of a write.

CSV conventions: one row per sweep point and analysis variant; numbers in full precision
(``repr``), infinities as ``inf``, values that do not apply as empty cells.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = [
    "atomic_path", "write_text", "write_json", "ResultsTable", "read_results", "read_metadata",
    "environment", "git_commit", "RESULTS", "METADATA",
]

RESULTS = "results.csv"
METADATA = "metadata.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    The temporary name keeps the suffix, so tools that infer a format from it (matplotlib's
    ``savefig``) still work. On an exception the temporary file is removed and ``path`` is left
    as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically (non-finite floats as strings)."""
    text = json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # repr: shortest exact form, 'inf'
    if hasattr(value, "item"):  # numpy / jax scalars
        return _cell(value.item())
    return str(value)


class ResultsTable:
    """A CSV table that grows chunk by chunk: the header at creation, then each chunk appended in
    one write and flushed to disk.

    Args:
        path: the CSV file (usually ``<run dir>/results.csv``); created (or emptied) with the
            header.
        columns: column names in order; a row's missing keys are empty cells, extra keys are an
            error (a typo would otherwise lose data silently).

    Examples:
        >>> table = ResultsTable(run_dir / "results.csv", ("length_km", "key_rate"))
        >>> for chunk in study:
        ...     table.append(chunk.rows)   # results.csv now holds every finished chunk
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._known = frozenset(self.columns)
        self.n_rows = 0
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(self.columns)
        write_text(self.path, buffer.getvalue())

    @classmethod
    def reopen(cls, path: str | os.PathLike, columns: Sequence[str], n_rows: int) -> "ResultsTable":
        """The table of an earlier run of the same columns, cut to its first ``n_rows`` rows (the
        rows of the chunks its run recorded as finished: a chunk whose write a kill cut short goes),
        to be continued with :meth:`append`.

        Raises:
            ValueError: the file's header is not ``columns``, or it holds fewer than ``n_rows`` rows.
        """
        path = Path(path)
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        lines = list(csv.reader(io.StringIO(text, newline="")))
        if not lines or tuple(lines[0]) != tuple(columns):
            raise ValueError(f"{path}: its columns are not {', '.join(columns)}")
        if len(lines) - 1 < int(n_rows):
            raise ValueError(f"{path}: {len(lines) - 1} rows, fewer than the {int(n_rows)} its run recorded")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines[: int(n_rows) + 1])
        table = cls.__new__(cls)
        table.path, table.columns, table._known, table.n_rows = path, tuple(columns), frozenset(columns), int(n_rows)
        write_text(path, buffer.getvalue())
        return table

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append ``rows`` to the file (one write, flushed and synced). Returns the total number
        of rows."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        n = 0
        for row in rows:
            if not self._known.issuperset(row):
                raise KeyError(f"row has columns not in the table: {sorted(set(row) - self._known)}")
            writer.writerow([_cell(row.get(c)) for c in self.columns])
            n += 1
        if n:
            with open(self.path, "a", encoding="utf-8", newline="") as f:
                f.write(buffer.getvalue())
                f.flush()
                os.fsync(f.fileno())
        self.n_rows += n
        return self.n_rows


def _parse(cell: str) -> Any:
    if cell == "":
        return None
    try:
        return float(cell)  # also 'inf', '-inf', 'nan'
    except ValueError:
        return cell


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV (a file or a run directory): numbers as float, empty cells as None;
    a last line without its end (a write cut short) is left out."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a write cut short by a kill: its chunk was not finished
        text = text[: text.rfind("\n") + 1]
    return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text, newline=""))]


def read_metadata(run_dir: str | os.PathLike) -> dict:
    """``metadata.json`` of a run directory ({} if there is none)."""
    path = Path(run_dir) / METADATA
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """Commit of the git work tree holding ``path`` (default: the qmc package), '+dirty' if it has
    uncommitted changes; None outside a work tree (e.g. an installed wheel) or without git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def environment() -> dict:
    """Versions and device: qmc, jax, jaxlib, Python, platform, the default JAX device, git commit."""
    import jax
    import jaxlib

    import qmc

    device = jax.devices()[0]
    return {
        "qmc_version": qmc.__version__,
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", None),
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "device": f"{device.platform}:{getattr(device, 'device_kind', device)}",
        "device_count": jax.device_count(),
        "git_commit": git_commit(),
    }


def now_iso() -> str:
    """Local time with its UTC offset, ISO 8601, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
