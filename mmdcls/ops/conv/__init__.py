"""Exact convolution algorithms for the dense (large, often depthwise) kernels of DCLS layers.

:func:`conv_nd` (:mod:`.dispatch`) is the one entry point: it describes the call once
(:class:`ConvProblem`, :mod:`.problem`), selects an algorithm (:mod:`.selection`) from the table
:data:`ALGORITHMS` (:mod:`.algorithms`, one module per algorithm) and runs it (:mod:`.execute`).
Every algorithm computes the same zero-padded cross-correlation as ``F.conv{1,2,3}d``
(dilation 1), differentiable in input, kernel and bias, with ``F.conv``'s non-finite semantics
(:mod:`.non_finite`). ``docs/architecture.md`` lists them; ``docs/cost_model.md`` the fitted
constants of ``'auto'``.

:mod:`.large_kernel` holds ``LargeKernelConv{1,2,3}d``: ``nn.Conv`` modules computed by
:func:`conv_nd`.
"""
from .algorithm import ConvAlgorithm
from .algorithms import ALGORITHMS
from .algorithms.fft_sizes import fft_lengths
from .constant_kernel import ConstantKernel
from .dispatch import conv_nd
from .large_kernel import (LargeKernelConv1d, LargeKernelConv2d, LargeKernelConv3d,
                           LargeKernelDepthwiseConv2d)
from .problem import ConvProblem
from .selection import (AUTO, BENCHMARK, ENV_VAR, algo_choices, check_algo, clear_benchmark_cache,
                        resolve_algo, select_algorithm)

__all__ = [
    'conv_nd', 'ALGORITHMS', 'ConvAlgorithm', 'ConvProblem', 'ConstantKernel', 'AUTO', 'BENCHMARK',
    'ENV_VAR', 'algo_choices', 'check_algo', 'resolve_algo', 'select_algorithm',
    'clear_benchmark_cache', 'fft_lengths', 'LargeKernelConv1d', 'LargeKernelConv2d',
    'LargeKernelConv3d', 'LargeKernelDepthwiseConv2d'
]
