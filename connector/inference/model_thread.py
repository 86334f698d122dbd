"""One long-lived thread that runs every model call of the serving process.

Why one thread: torch's CPU kernels run in OpenMP parallel regions, and GNU OpenMP gives every
thread that enters one its own team of worker threads, kept until that thread exits. Requests
are served from a pool of threads, so after a few requests the process holds several teams;
once those teams hold more threads than there are cores, OpenMP stops letting idle workers
spin and puts them to sleep after every parallel region, and each of the hundreds of small ops
of a forward pass then pays for waking them up. On 2 cores that made a detect ~40% slower
(measured: 55-63 ms per image on one thread, 87-95 ms once a second team existed).

So loading, warming, predicting and exporting all happen here, one call at a time (on 2 cores
two concurrent forward passes would only slow each other down), and callers wait for the result.
onnxruntime does not need it: its sessions keep their own thread pools (see engines.py).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

__all__ = ["ModelThread"]


class ModelThread:
    def __init__(self, name: str = "model"):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident: int | None = None
        self._pool.submit(self._remember_ident).result()

    def _remember_ident(self) -> None:
        self._ident = threading.get_ident()

    @property
    def ident(self) -> int | None:
        """The model thread's ``threading.get_ident()``."""
        return self._ident

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the model thread and return its result (or raise its exception)."""
        if threading.get_ident() == self._ident:  # called from a model call: waiting would deadlock
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
