"""The end of a multi-GPU (``torchrun``) bundle run: :func:`end_distributed`, the ``finalize`` of both bundles'
``multi_gpu_train.json``."""

from __future__ import annotations

import time

import torch.distributed as dist

__all__ = ["end_distributed"]


def end_distributed(gil_handover_seconds: float = 0.2) -> None:
    """Wait for every rank, destroy the default process group and, under gloo, let its worker threads free what
    they still hold before the interpreter shuts down. Without a process group, nothing.

    Why the wait: a gloo worker thread frees a finished collective after the caller has moved on, and freeing a
    tensor that Python created takes the GIL; a barrier holds the collectives that were in flight when it was
    called until it is freed itself. A rank with nothing left to do after the barrier (rank 1: no logging, no
    checkpoint) can reach interpreter shutdown without releasing the GIL; the worker thread then takes it during
    finalization and the process aborts ("terminate called without an active exception", signal 6; core dump:
    ``~AsyncBarrierWork`` -> ``~AsyncAllgatherWork`` -> ``decref_pyobject`` -> ``take_gil`` -> thread exit; see
    pytorch/pytorch#179291) after every output was written, and torchrun reports the whole run as failed. The sleep
    hands the GIL to those threads. ``benchmarks/ddp_exit.py`` counts the aborts with and without it.

    Args:
        gil_handover_seconds: how long the main thread sleeps after destroying a gloo group.
    """
    if not dist.is_initialized():
        return
    gloo = dist.get_backend() == "gloo"
    dist.barrier()
    dist.destroy_process_group()
    if gloo:
        time.sleep(gil_handover_seconds)
