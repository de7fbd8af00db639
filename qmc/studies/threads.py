"""A study's independent jobs run side by side in threads, their results taken in order.

Most of a short study's time is XLA compiling one program per analysis, and XLA compiles without
holding Python's lock: two analyses' programs compile at the same time on two cores while Python
traces a third. The jobs' results are the ones a loop would give (each job is the same
computation with its own keys), taken in the jobs' order.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["ordered"]

T = TypeVar("T")
R = TypeVar("R")


def ordered(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[R]:
    """``fn(item)`` for every item, at most ``workers`` at a time (default: the CPU count), yielded
    in the items' order as each is ready.

    The threads are daemons: a run stopped half-way (Ctrl-C, SIGTERM, an error in the loop that
    consumes this) does not wait for the jobs still running. An exception in a job is raised
    where its result is taken. One item (or ``workers=1``) runs in the caller's thread.
    """
    items = list(items)
    workers = max(1, min(len(items), workers or os.cpu_count() or 1))
    if workers == 1:
        yield from map(fn, items)
        return
    futures = [Future() for _ in items]
    pending = iter(range(len(items)))
    lock, stop = threading.Lock(), threading.Event()

    def work():
        while not stop.is_set():
            with lock:
                i = next(pending, None)
            if i is None:
                return
            try:
                futures[i].set_result(fn(items[i]))
            except BaseException as err:  # noqa: BLE001 (raised again in the consumer's thread)
                futures[i].set_exception(err)

    for k in range(workers):
        threading.Thread(target=work, name=f"qmc-job-{k}", daemon=True).start()
    try:
        for future in futures:
            yield future.result()
    finally:
        stop.set()
