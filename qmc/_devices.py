"""The local devices a batch is split over, and the shardings that split it.

Every batched computation (a sweep's chunk of points, a block engine's sessions, a pulse
engine's chunks, the optimizer's chains) is split over a 1-D mesh ``batch`` of local devices:
all of them by default (or the count of an enclosing :func:`limit`: a run's ``engine.devices``),
the first ``devices`` when a count is given. Work is keyed by its
index in the batch (point, session, block), never by device, so any device count gives the
same numbers bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import jax
import numpy as np

from qmc.validation import Check, ValidationError

__all__ = ["local_devices", "resolve", "shardings", "devices_check", "split_map", "padded_size", "limit", "AXIS"]

AXIS = "batch"
_LIMIT: list = [None]  # the count that ``devices=None`` means inside :func:`limit` (None: every local device)


@contextlib.contextmanager
def limit(devices: int | None, key: str = "engine.devices") -> Iterator[None]:
    """Inside, ``devices=None`` means the first ``devices`` local devices (``None``: all of them):
    how a run's ``engine.devices`` reaches every batch it splits (sweeps, engines, optimizer)
    without each call passing it. An explicit count still wins.

    Raises:
        ValidationError: ``devices`` is not None or a count of local devices (named ``key``).
    """
    local_devices(devices, key)  # checked here, before anything runs
    previous, _LIMIT[0] = _LIMIT[0], devices
    try:
        yield
    finally:
        _LIMIT[0] = previous


def _problem(devices: Any, key: str) -> str | None:
    """The one-line message for a ``devices`` setting that is not None or a count of local
    devices; None when it is fine."""
    if devices is None:
        return None
    n_local = jax.local_device_count()
    try:
        ok = not isinstance(devices, bool) and float(devices) == int(float(devices)) and 1 <= int(float(devices)) <= n_local
    except (TypeError, ValueError, OverflowError):
        ok = False
    if ok:
        return None
    return (f"{key} = {devices!r} is out of range: must be null (every local device) or a whole number from 1 "
            f"to {n_local} (the local devices)")


def local_devices(devices: int | None = None, key: str = "devices") -> list:
    """The local devices a batch is split over: all of them (``None``) or the first ``devices``.

    Raises:
        ValidationError: ``devices`` is not None or a whole number from 1 to the local devices'
            count (the message names ``key``).
    """
    message = _problem(devices, key)
    if message is not None:
        raise ValidationError(message)
    if devices is None:
        devices = _LIMIT[0]
    local = jax.local_devices()
    return list(local) if devices is None else list(local[: int(float(devices))])


def resolve(devices: int | None = None, key: str = "devices") -> tuple | None:
    """The devices of :func:`local_devices` as a tuple (hashable: a static argument of a jit), or
    None where that is one device (nothing to split)."""
    used = tuple(local_devices(devices, key))
    return used if len(used) > 1 else None


def devices_check(field: str = "devices") -> Check:
    """The validation of an engine's ``devices`` field (:mod:`qmc.validation`)."""
    return Check(lambda obj, prefix: _problem(getattr(obj, field), f"{prefix}{field}"))


@functools.lru_cache(maxsize=None)
def shardings(devices: tuple) -> tuple[Any, Any]:
    """(split along the first axis, replicated) over a 1-D mesh ``batch`` of ``devices``."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = _mesh(devices)
    return NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=None)
def _mesh(devices: tuple):
    from jax.sharding import Mesh

    return Mesh(np.array(devices), (AXIS,))


def padded_size(n: int, n_devices: int) -> int:
    """``n`` rounded up to a multiple of ``n_devices``."""
    return -(-int(n) // int(n_devices)) * int(n_devices)


def split_map(fn: Callable, devices: tuple, n_split: int, out_split: bool = True) -> Callable:
    """``fn`` run on every device of ``devices`` (``jax.shard_map`` over the mesh ``batch``).

    The first ``n_split`` arguments are split along their first axis (each device gets its
    slice), the others replicated. ``out_split``: the outputs are the devices' slices
    concatenated along their first axis; otherwise every device returns the same value (after
    a ``lax.psum`` over ``batch``, say) and the output is replicated. Inside ``fn``,
    ``jax.lax.axis_index("batch")`` is the device's position in ``devices``.
    """
    from jax.sharding import PartitionSpec

    def wrapped(*args):
        specs = tuple(PartitionSpec(AXIS) if i < n_split else PartitionSpec() for i in range(len(args)))
        out_specs = PartitionSpec(AXIS) if out_split else PartitionSpec()
        # No replication checks: the samplers' loops start from replicated carries.
        if hasattr(jax, "shard_map"):
            mapped = jax.shard_map(fn, mesh=_mesh(devices), in_specs=specs, out_specs=out_specs, check_vma=False)
        else:  # JAX before 0.6
            from jax.experimental.shard_map import shard_map

            mapped = shard_map(fn, mesh=_mesh(devices), in_specs=specs, out_specs=out_specs, check_rep=False)
        return mapped(*args)

    return wrapped
