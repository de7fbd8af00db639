"""How qmc's analysis programs are compiled.

On a CPU, XLA's fusion emitters (``xla_cpu_use_fusion_emitters``, on by default in recent
jaxlib) compile the analyses' and the optimizer's programs (thousands of small scalar and
few-element operations) in two to three times the time of XLA's other emitters, and the programs
then run as fast either way ([docs/benchmarks](../docs/benchmarks/README.md#compilation)). Where
compilation is most of a first answer, :func:`jit` turns them off; the Monte Carlo engines'
kernels keep XLA's defaults (their speed is measured per backend). A jaxlib that does not know the
option compiles with its defaults.
"""

from __future__ import annotations

import functools
import threading

import jax

__all__ = ["compiler_options", "jit"]

_CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=None)
def _accepted(backend: str) -> bool:
    if backend != "cpu":
        return False
    try:
        jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS)(0.0).block_until_ready()
    except Exception:  # noqa: BLE001 (an unknown option: XLA raises its own runtime error)
        return False
    return True


def compiler_options() -> dict:
    """The options :func:`jit` passes to XLA on the default backend (empty off a CPU)."""
    return dict(_CPU_OPTIONS) if _accepted(jax.default_backend()) else {}


def jit(fun=None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` with :func:`compiler_options`, made at the first call (when
    the backend is known, so that importing qmc starts no backend). Usable as a decorator, bare or
    through ``functools.partial(jit, static_argnames=...)``."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    jitted, lock = [], threading.Lock()

    def compiled():
        if not jitted:
            with lock:  # one jax.jit object (one cache) when threads make the first calls together
                if not jitted:
                    jitted.append(jax.jit(fun, compiler_options=compiler_options(), **jit_kwargs))
        return jitted[0]

    @functools.wraps(fun)
    def call(*args, **kwargs):
        return compiled()(*args, **kwargs)

    call.lower = lambda *args, **kwargs: compiled().lower(*args, **kwargs)
    call.cache_size = lambda: compiled()._cache_size()  # programs compiled so far (tests)
    return call
