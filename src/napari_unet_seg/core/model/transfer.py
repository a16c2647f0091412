"""Window batches to the device and logits back: asynchronous through pinned memory on CUDA, plain elsewhere.

Page-locked (pinned) host memory lets CUDA copy while the CPU goes on, so
the next windows are read while the GPU still computes, and a batch's logits
come back on a side stream while the GPU computes the next batch. On the CPU
(and MPS) none of this runs: a copy is what it always was, and costs nothing.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch


def overlaps(device: torch.device) -> bool:
    """Whether copies to and from ``device`` run asynchronously, so the loop keeps one batch in flight."""
    return device.type == "cuda"


def to_device(arrays: list[np.ndarray], device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    """Equally shaped (C, h, w) float32 arrays as one (N, C, h, w) batch on ``device``.

    On CUDA the arrays are stacked straight into pinned memory (one host copy,
    not two) and sent without waiting.
    """
    if device.type != "cuda":
        return torch.from_numpy(np.stack(arrays)).to(device).contiguous(memory_format=memory_format)
    host = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.float32, pin_memory=True)
    np.stack(arrays, out=host.numpy())
    return host.to(device, non_blocking=True).contiguous(memory_format=memory_format)


@cache
def _copy_stream(index: int) -> torch.cuda.Stream:
    """One side stream per GPU for copies back to the host, so they overlap the next batch's kernels."""
    return torch.cuda.Stream(device=index)


class HostCopy:
    """Logits on their way to the host as float32; :meth:`numpy` waits for them (on CUDA only)."""

    def __init__(self, logits: torch.Tensor) -> None:
        logits = logits.float()
        self._done: torch.cuda.Event | None = None
        if logits.device.type != "cuda":
            self._host = logits.cpu()
            return
        stream = _copy_stream(logits.device.index)
        stream.wait_stream(torch.cuda.current_stream(logits.device))  # the logits are computed first
        self._host = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
        with torch.cuda.stream(stream):
            self._host.copy_(logits, non_blocking=True)
            self._done = torch.cuda.Event()
            self._done.record(stream)
        logits.record_stream(stream)  # not reused by the next batch until the copy has read it

    def numpy(self) -> np.ndarray:
        """The logits as a host array, once the copy has finished."""
        if self._done is not None:
            self._done.synchronize()
        return self._host.numpy()
