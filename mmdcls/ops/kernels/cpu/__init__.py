"""mmdcls's C library: fused CPU construction of 2-D DCLS kernels, a sparse direct and an FFT
depthwise convolution, compiled on first use from ``csrc/`` beside this package.

* :mod:`.loader`: building (compiler, flags, cache directory and key), loading, the
  ``MMDCLS_NATIVE`` mode, and :func:`.loader.call`, the one checked path every call takes;
* :mod:`.prototypes`: each C entry point declared once, with its C argument types;
* :mod:`.constants`: the constants C shares with Python (vector width, FFT radices, version
  codes), and :mod:`.generated_header`, the header built from them and from the prototypes
  that every C source is compiled against;
* typed bindings: :mod:`.construction` (``construct_profiles_2d.c``,
  ``construct_bilinear_2d.c``), :mod:`.depthwise` (``depthwise_2d.c``: the sparse direct conv),
  :mod:`.depthwise_fft` (``depthwise_fft_2d.c`` on the 1-D transforms of ``fft_1d.c``).

``MMDCLS_NATIVE`` selects: unset / ``auto``: use it when it builds (one warning otherwise);
``0``: never (pure torch); ``1``: always, raising if it cannot be built.
"""
from .constants import FFT_RADICES
from .construction import (SAVED_PROFILES_MAX_RATIO, bilinear_backward, bilinear_forward,
                           dense_backward, dense_forward, saved_profiles_size, usable)
from .depthwise import depthwise_conv2d, depthwise_grad_kernel
from .depthwise_fft import depthwise_fft_filter, depthwise_fft_grad_kernel, depthwise_fft_spectra
from .loader import CACHE_ENV_VAR, ENV_VAR, MODES, failure_reason, library, mode, unavailable_reason

__all__ = [
    'ENV_VAR', 'CACHE_ENV_VAR', 'MODES', 'mode', 'library', 'failure_reason', 'unavailable_reason',
    'usable', 'dense_forward', 'dense_backward', 'bilinear_forward', 'bilinear_backward',
    'SAVED_PROFILES_MAX_RATIO', 'saved_profiles_size', 'depthwise_conv2d', 'depthwise_grad_kernel',
    'depthwise_fft_spectra', 'depthwise_fft_filter', 'depthwise_fft_grad_kernel', 'FFT_RADICES'
]
