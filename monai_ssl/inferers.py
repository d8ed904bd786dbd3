"""Inferers for the bundles' training engines."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

__all__ = ["AutocastInferer", "cpu_has_native_bf16"]

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has bf16 arithmetic instructions (x86 ``avx512_bf16`` or ``amx_bf16``), read from ``cpuinfo``.

    Without them bf16 convolutions are emulated (and their speed was not measured), so the bundles switch CPU bf16
    autocast on only where this is true. ``False`` where the file cannot be read (not Linux).
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _to_float32(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: _to_float32(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_to_float32(v) for v in outputs)
    return outputs


class AutocastInferer(Inferer):
    """
    Run another inferer under ``torch.autocast`` and return its floating-point outputs as float32.

    MONAI's engines autocast on CUDA only (``amp=True``); this inferer brings mixed precision to any device,
    bf16 on CPUs in particular. Only the forward pass runs in reduced precision: the outputs (tensors, or dicts,
    lists and tuples of them) are cast back to float32 before the engine computes the loss and the metrics, and
    the gradients flow through that cast to the float32 parameters.

    Args:
        inferer: the inferer to run, :py:class:`monai.inferers.SimpleInferer` by default.
        device_type: ``torch.autocast``'s device type, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: ``"bfloat16"`` or ``"float16"`` (or the torch dtype).
        enabled: ``False`` runs ``inferer`` unchanged, in float32, so that a config can switch autocast off.
    """

    def __init__(
        self,
        inferer: Inferer | None = None,
        device_type: str = "cpu",
        dtype: str | torch.dtype = "bfloat16",
        enabled: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(dtype, str):
            if dtype not in AUTOCAST_DTYPES:
                raise ValueError(f"dtype must be one of {sorted(AUTOCAST_DTYPES)}, got {dtype!r}.")
            dtype = AUTOCAST_DTYPES[dtype]
        if dtype not in AUTOCAST_DTYPES.values():
            raise ValueError(f"dtype must be torch.bfloat16 or torch.float16, got {dtype}.")
        try:
            available = torch.amp.is_autocast_available(device_type)
        except RuntimeError:  # not a device type at all
            available = False
        if not available:
            raise ValueError(f"torch.autocast does not support device_type {device_type!r}; use 'cpu' or 'cuda'.")
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.device_type = device_type
        self.dtype = dtype
        self.enabled = bool(enabled)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``inferer(inputs, network, *args, **kwargs)`` under autocast; float32 outputs."""
        if not self.enabled:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            outputs = self.inferer(inputs, network, *args, **kwargs)
        return _to_float32(outputs)
