"""Reuse of a layer's constructed kernel (and what the convolution algorithms prepare from it,
e.g. FFT spectra) while the values it was built from are unchanged: what makes an unfolded
model in eval mode (``tools/test.py``, validation during training) as fast as a folded one.

A layer rebuilds its kernel on every forward pass that needs gradients (training). When no
gradient is needed (``torch.no_grad()``, ``torch.inference_mode()``, or parameters with
``requires_grad=False``), :class:`KernelCache` hands back the kernel built from parameters
with the same values, and the :class:`~mmdcls.ops.conv.ConstantKernel` holding what the
algorithms prepared from it.

The cache is exact by construction: it keeps a copy of the parameters it built from (a few KB
for a DCLS layer) and compares every element's bits against the current ones on each call, so
every way of changing a parameter is seen: optimizer steps (fused ones included),
``load_state_dict``, writes through ``.data`` or ``.numpy()``, mmengine's ``EMAHook`` swapping
weights with ``p.data.copy_``, a teacher updated with ``p.data.mul_().add_()``, a storage
reused at the same address. It serves CPU parameters only: on other devices the comparison
would need the host to wait for the device (a synchronisation every forward), so there the
kernel is built on every call (on CUDA a few fused launches). JIT traces and
``torch.compile`` graphs bypass it.
"""
import ctypes
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .conv.constant_kernel import ConstantKernel
from .graph_state import needs_grad, records_graph

#: a kernel and, when it is cached, what is kept about it
KernelAndFacts = Tuple[Tensor, Optional[ConstantKernel]]


def _libc_memcmp():
    """The C library's ``memcmp`` (one pass over both buffers, no temporaries: the fastest
    exact comparison), or None where it cannot be found."""
    for name in (None, 'msvcrt'):
        try:
            memcmp = getattr(ctypes.CDLL(name), 'memcmp')
        except (OSError, AttributeError):
            continue
        memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
        memcmp.restype = ctypes.c_int
        return memcmp
    return None


_MEMCMP = _libc_memcmp()
# integer dtype of the same width, for the comparison without memcmp
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _same_bytes(param: Tensor, copy: Tensor) -> bool:
    """Whether the CPU tensor ``param`` holds exactly the bytes of ``copy`` (a contiguous
    tensor of its dtype and shape): bit for bit, so NaN == NaN and -0.0 != 0.0."""
    if param.dtype != copy.dtype or param.shape != copy.shape or param.device.type != 'cpu':
        return False
    if _MEMCMP is not None and param.is_contiguous():
        return _MEMCMP(param.data_ptr(), copy.data_ptr(), copy.numel() * copy.element_size()) == 0
    bits = _BITS[copy.element_size()]
    return torch.equal(param.detach().view(bits), copy.view(bits))


class KernelCache:
    """One layer's cached kernel (see the module docstring). Not a module, not in the state
    dict; a layer keeps one as a plain attribute."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forgets the kernel, its prepared state and the parameter copies."""
        self._extra = None
        self._values: Tuple[Optional[Tensor], ...] = ()
        self._kernel: Optional[Tensor] = None
        self._constant: Optional[ConstantKernel] = None

    @property
    def kernel(self) -> Optional[Tensor]:
        """The cached kernel, or None."""
        return self._kernel

    @staticmethod
    def applies(params: Sequence[Optional[Tensor]]) -> bool:
        """Whether a forward pass with these parameters may use the cache: no gradient
        needed, CPU parameters, eager mode."""
        if needs_grad(*params) or records_graph():
            return False
        return all(p.device.type == 'cpu' for p in params if p is not None)

    def _unchanged(self, params: Sequence[Optional[Tensor]], extra) -> bool:
        if self._kernel is None or extra != self._extra or len(params) != len(self._values):
            return False
        for param, value in zip(params, self._values):
            if param is None or value is None:
                if param is not value:
                    return False
                continue
            if not _same_bytes(param, value):
                return False
        return True

    def get(self, params: Sequence[Optional[Tensor]], build: Callable[[], Tensor],
            extra=()) -> Tuple[Tensor, ConstantKernel]:
        """``(kernel, constant)``: the cached kernel if ``params`` hold the same values (and
        ``extra``, the layer's construction settings, is equal), else ``build()`` (run under
        ``no_grad``), which is then cached. Call only where :meth:`applies` holds."""
        extra = tuple(extra)
        if not self._unchanged(params, extra):
            self.clear()
            # built as a normal tensor even under inference_mode, so that it serves later
            # no_grad calls too
            with torch.inference_mode(False), torch.no_grad():
                values = tuple(None if p is None else p.detach().contiguous().clone()
                               for p in params)
                kernel = build()
            self._extra, self._values, self._kernel = extra, values, kernel
            self._constant = ConstantKernel()
        return self._kernel, self._constant


class CachedKernelMixin:
    """For ``nn.Module`` layers with a constructed (or constant) kernel: :meth:`_forward_kernel`
    gives the kernel of a forward pass and, when it is cached, its
    :class:`~mmdcls.ops.conv.ConstantKernel` for ``conv_nd``; ``.to()`` and friends drop the
    cache (it never holds memory of a previous device or dtype)."""

    def _kernel_cache(self) -> KernelCache:
        cache = self.__dict__.get('_dcls_kernel_cache')
        if cache is None:  # also for layers unpickled without one
            cache = KernelCache()
            self.__dict__['_dcls_kernel_cache'] = cache
        return cache

    def _drop_kernel_cache(self) -> None:
        cache = self.__dict__.get('_dcls_kernel_cache')
        if cache is not None:
            cache.clear()

    def _forward_kernel(self,
                        params: Sequence[Optional[Tensor]],
                        build: Callable[[], Tensor],
                        extra: tuple = ()) -> KernelAndFacts:
        """``(kernel, constant)``: the cached kernel and its facts where
        :meth:`KernelCache.applies`, else ``(build(), None)``."""
        if KernelCache.applies(params):
            return self._kernel_cache().get(params, build, extra)
        if not records_graph():
            self._drop_kernel_cache()  # frees the kernel while training
        return build(), None

    def _apply(self, *args, **kwargs):
        # .to(), .float(), .cuda(), .share_memory(): new storages (or new values) follow
        self._drop_kernel_cache()
        return super()._apply(*args, **kwargs)

    def __getstate__(self):
        # pickling / deepcopy: the cache (kernel-sized tensors) is not part of the layer
        state = super().__getstate__() if hasattr(super(), '__getstate__') else self.__dict__
        state = dict(state)
        state.pop('_dcls_kernel_cache', None)
        return state
