"""Deprecated: the convolution backend moved to :mod:`mmdcls.ops.conv` (one module per
algorithm); import from there, or ``conv_nd`` / ``LargeKernelConv2d`` from :mod:`mmdcls.ops`.
This module re-exports the names it had, for code written against the earlier README."""
import warnings

from .conv import (ALGORITHMS, ALGOS, ENV_VAR, LargeKernelConv1d, LargeKernelConv2d,
                   LargeKernelConv3d, LargeKernelDepthwiseConv2d, benchmark_algo, check_algo,
                   clear_benchmark_cache, conv_channels_last, conv_direct, conv_fft, conv_nd)
from .conv import conv_sparse_direct as conv_native
from .conv import (fft_kernel_spectrum, fft_lengths, heuristic_algo, kernel_spectrum_for,
                   native_fft_applies, resolve_algo, select_algo)

__all__ = [
    'ALGORITHMS', 'ALGOS', 'ENV_VAR', 'check_algo', 'resolve_algo', 'select_algo', 'benchmark_algo',
    'clear_benchmark_cache', 'heuristic_algo', 'conv_nd', 'conv_direct', 'conv_channels_last',
    'conv_fft', 'conv_native', 'fft_lengths', 'fft_kernel_spectrum', 'kernel_spectrum_for',
    'native_fft_applies', 'LargeKernelConv1d', 'LargeKernelConv2d', 'LargeKernelConv3d',
    'LargeKernelDepthwiseConv2d'
]

warnings.warn(
    'mmdcls.ops.conv_backend is deprecated: import from mmdcls.ops.conv (or conv_nd / '
    'LargeKernelConv2d from mmdcls.ops)',
    DeprecationWarning,
    stacklevel=2)
