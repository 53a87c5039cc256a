"""``ConstantKernel``: the facts kept about a kernel that does not change between calls."""
from typing import Any, Callable, Dict

import torch


class ConstantKernel:
    """What is worth remembering about a kernel that stays the same between calls (a DCLS
    layer's cached kernel in inference, a folded layer's weight): values derived from it,
    e.g. its non-zero taps or an algorithm's prepared state (FFT spectra), computed once per
    key. The owner (:class:`~mmdcls.ops.kernel_cache.KernelCache`) drops it when the kernel
    changes. At most ``max_entries`` values are kept (the oldest goes first)."""

    def __init__(self, max_entries: int = 16) -> None:
        self._values: Dict[tuple, Any] = {}
        self._max_entries = max_entries

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the remembered value after."""
        if key not in self._values:
            if len(self._values) >= self._max_entries:
                self._values.pop(next(iter(self._values)))
            with torch.inference_mode(False), torch.no_grad():
                self._values[key] = compute()
        return self._values[key]
