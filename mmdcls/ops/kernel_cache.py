"""Reuse of a DCLS layer's constructed kernel (and its FFT spectra) while nothing it depends on
changed: what makes an unfolded model in eval mode (``tools/test.py``, validation during
training) as fast as a folded one.

A layer rebuilds its kernel on every forward pass that needs gradients (training). When no
gradient is needed (``torch.no_grad()``, ``torch.inference_mode()``, or parameters with
``requires_grad=False``), :class:`KernelCache` hands back the kernel built for the same
parameters, recognised by:

* identity: the same storage (``data_ptr``), shape, strides, dtype and device of every
  parameter. The cache holds a reference to the parameters' storages, so a freed storage
  cannot come back at the same address as a different tensor;
* content: the tensors' in-place version counters (``_version``), which every in-place
  change bumps: an optimizer step, ``load_state_dict`` (``copy_``), ``clamp_parameters``
  (``clamp_``), ``with torch.no_grad(): p.add_(...)``;
* the layer's construction settings (version, sizes), passed as ``extra``.

The layers also drop the cache explicitly in ``_apply`` (``.to()``, ``.float()``, ``.cuda()``),
``_load_from_state_dict`` and ``clamp_parameters``, so it never holds memory of a previous
device or dtype. Parameters without version counters (inference tensors, created under
``inference_mode``), JIT traces and ``torch.compile`` graphs bypass the cache.

The FFT spectra (:func:`mmdcls.ops.conv.kernel_spectrum_for`) of a cached kernel are kept per
(transform lengths, form): one entry per input size seen since the kernel was built, at most
:data:`MAX_SPECTRA`.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .conv import kernel_spectrum_for
from .torch_compat import is_compiling

#: spectra kept per kernel (input sizes of a multi-scale test are few; each is kernel-sized)
MAX_SPECTRA = 4


def _tensor_key(tensor: Optional[Tensor]):
    if tensor is None:
        return None
    return (tensor.data_ptr(), tensor._version, tuple(tensor.shape), tensor.stride(), tensor.dtype,
            tensor.device)


class KernelCache:
    """One layer's cached kernel (see the module docstring). Not a module, not in the state
    dict; a layer keeps one as a plain attribute."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forgets the kernel, its spectra and the references to the parameters."""
        self._key = None
        self._held: Tuple[Tensor, ...] = ()
        self._kernel: Optional[Tensor] = None
        self._spectra: Dict[tuple, Tensor] = {}

    @property
    def kernel(self) -> Optional[Tensor]:
        """The cached kernel, or None."""
        return self._kernel

    @staticmethod
    def applies(params: Sequence[Optional[Tensor]]) -> bool:
        """Whether a forward pass with these parameters may use the cache: no gradient
        needed, eager mode, every parameter with a version counter."""
        if torch.is_grad_enabled() and any(p is not None and p.requires_grad for p in params):
            return False
        if torch.jit.is_tracing() or torch.jit.is_scripting() or is_compiling():
            return False
        return not any(p is not None and p.is_inference() for p in params)

    def get(self, params: Sequence[Optional[Tensor]], build: Callable[[], Tensor],
            extra=()) -> Tensor:
        """The kernel of ``params``: the cached one if they (and ``extra``) are unchanged,
        else ``build()`` (run under ``no_grad``), which is then cached. Call only where
        :meth:`applies` holds."""
        key = (tuple(_tensor_key(p) for p in params), tuple(extra))
        if self._kernel is None or key != self._key:
            self.clear()
            # built as a normal tensor even under inference_mode, so that it serves later
            # no_grad calls too and conv_nd can remember facts about it (its non-zero taps)
            with torch.inference_mode(False), torch.no_grad():
                kernel = build()
                # the storages stay referenced (detached views: no autograd history) so that
                # their addresses cannot be reused while the key names them
                self._held = tuple(p.detach() for p in params if p is not None)
            self._key, self._kernel = key, kernel
        return self._kernel

    def spectrum(self, lengths: Tuple[int, ...], native_form: bool) -> Tensor:
        """:func:`kernel_spectrum_for` the cached kernel (``conv_nd``'s ``kernel_spectrum``
        argument), computed once per (lengths, form)."""
        if self._kernel is None:
            raise RuntimeError('KernelCache.spectrum needs a cached kernel (call get() first)')
        key = (tuple(lengths), bool(native_form))
        spectrum = self._spectra.get(key)
        if spectrum is None:
            if len(self._spectra) >= MAX_SPECTRA:
                self._spectra.pop(next(iter(self._spectra)))
            with torch.inference_mode(False), torch.no_grad():
                spectrum = kernel_spectrum_for(self._kernel, lengths, native_form)
            self._spectra[key] = spectrum
        return spectrum


class CachedKernelMixin:
    """For the DCLS ``nn.Module`` layers: :meth:`_forward_kernel` gives the kernel of a
    forward pass (cached when no gradient is needed) and the ``kernel_spectrum`` argument for
    ``conv_nd``; ``.to()`` and friends drop the cache. The layer calls
    :meth:`_drop_kernel_cache` where it changes its parameters itself."""

    def _kernel_cache(self) -> KernelCache:
        cache = self.__dict__.get('_dcls_kernel_cache')
        if cache is None:  # also for layers unpickled from before the cache existed
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
                        extra=()):
        """``(kernel, kernel_spectrum)``: the cached kernel and its spectrum function when no
        gradient is needed, else ``(build(), None)`` (and the cache is dropped: the
        parameters are about to change)."""
        cache = self._kernel_cache()
        if KernelCache.applies(params):
            return cache.get(params, build, extra), cache.spectrum
        cache.clear()
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
