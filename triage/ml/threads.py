"""How many CPU threads an encoder computes with in this process.

ONNX Runtime and torch each default to one thread per core, in every process. A Celery
worker's prefork pool runs as many processes as the machine has cores (Celery's default),
so two classify tasks at once ran four encoder threads on two cores: each runtime's threads
wait on one another at every layer, and a pool of two classified about a third fewer items
a second than with one thread per process (297 against 419-451 on 2 cores;
benchmarks/classify_throughput.py --variants pool-int8 --pool-threads default).

`TRIAGE_ENCODER_THREADS=auto` (the default) shares the cores: each process of a prefork
pool gets cores ÷ processes threads, at least one (triage.celery sets the share in each
pool process before it builds an encoder). Anywhere else (the web, management commands,
a solo or threads pool, in-process tasks) the runtime keeps its default.
"""

import functools
import os
from contextlib import AbstractContextManager
from typing import Any

from django.conf import settings
from threadpoolctl import ThreadpoolController

# How many processes run encoders at once on this machine's cores; set per process.
_sharing = 1


def share_cores(processes: int) -> None:
    """This process is one of `processes` that encode at once on the same cores: call it
    before the process builds its first encoder (a built encoder keeps its threads)."""
    global _sharing
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    _sharing = processes


def available_cpus() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def encoder_threads() -> int | None:
    """Threads for an encoder built now: the setting, or the process's share of the
    cores; None leaves the runtime's default (one per core)."""
    configured: int | None = settings.TRIAGE_ENCODER_THREADS
    if configured is not None:
        return configured
    if _sharing <= 1:
        return None
    return max(1, available_cpus() // _sharing)


def set_torch_threads(threads: int | None) -> None:
    """torch's intra-op threads, which are the whole process's (None: leave them)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    import torch

    torch.set_num_threads(threads)


def one_blas_thread() -> AbstractContextManager[Any]:
    """numpy's BLAS on the calling thread only, for a product too small to share.

    OpenBLAS keeps each worker it woke busy-waiting for about 0.1 s after a call (0.10
    CPU-seconds in a 0.5 s sleep after a (1000 x 384) @ (384 x 7) product, 0.00 with one
    thread): the embedding head's product, a fraction of a millisecond of work, took a
    core for the tenth of a second in which the vote, the writes and the database server
    run, and in a prefork pool the core the other process encodes on."""
    limited: AbstractContextManager[Any] = _blas().limit(limits=1, user_api="blas")
    return limited


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()
