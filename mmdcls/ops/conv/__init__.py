"""Exact convolution algorithms for the dense (large, often depthwise) kernels of DCLS layers.

:func:`conv_nd` (:mod:`.dispatch`) is the single entry point the DCLS layers call once their
kernel is built; it is equally usable for plain large-kernel convs (see
:class:`LargeKernelConv2d`). Every algorithm computes the same zero-padded cross-correlation as
``F.conv{1,2,3}d`` (dilation 1) and is differentiable with respect to input, kernel and bias:

* ``'direct'`` (:mod:`.direct`): ``F.conv{1,2,3}d`` on the tensors as given (NCHW).
* ``'channels_last'`` (:mod:`.channels_last`): ``F.conv2d`` / ``F.conv3d`` on channels-last
  copies (oneDNN's fast depthwise path on CPU; the output stays channels-last), with a fast
  depthwise kernel gradient; 1-D: ``'direct'``.
* ``'fft'`` (:mod:`.fft`): cost independent of the kernel size. Depthwise stride-1 2-D convs of
  float32 / float64 CPU tensors outside autocast run the C library's FFT convolution
  (``csrc/depthwise_fft_2d.c``), everything else ``torch.fft`` in float32 / float64.
* ``'sparse_direct'`` (:mod:`.sparse_direct`; alias ``'native'``, its earlier name): the C
  library's register-blocked direct depthwise convolution over the kernel's non-zero taps
  (``csrc/depthwise_2d.c``), in training and inference, for depthwise stride-1 2-D convs of
  float32 / float64 CPU tensors; otherwise, or without the C library, ``'channels_last'``.

Selection (:mod:`.selection`; first that applies): the call's ``algo`` (a DCLS module's
``conv_algo``), the ``MMDCLS_CONV_ALGO`` environment variable, then ``'auto'``. Besides the four
algorithms (and the alias):

* ``'auto'``: a cost model fitted on this project's CPU measurements (:mod:`.cost_model`,
  :func:`heuristic_algo`); CUDA inputs use ``'direct'`` (cuDNN).
* ``'benchmark'``: like ``torch.backends.cudnn.benchmark``: the first call for a key (device,
  dtype, input shape, kernel shape, stride, padding, groups, grad mode) times every algorithm
  (forward, plus backward when grad is enabled) and caches the fastest for the process.

:mod:`.large_kernel` holds ``LargeKernelConv{1,2,3}d``: ``nn.Conv`` modules computed by
:func:`conv_nd`.
"""
from .channels_last import conv_channels_last
from .cost_model import FITTED, CostModel, heuristic_algo
from .direct import conv_direct
from .dispatch import conv_nd
from .fft import conv_fft, fft_kernel_spectrum, fft_lengths, kernel_spectrum_for, native_fft_applies
from .large_kernel import (LargeKernelConv1d, LargeKernelConv2d, LargeKernelConv3d,
                           LargeKernelDepthwiseConv2d)
from .selection import (ALGORITHM_FNS, ALGORITHMS, ALGOS, ALIASES, ENV_VAR, benchmark_algo,
                        check_algo, clear_benchmark_cache, resolve_algo, select_algo)
from .sparse_direct import conv_sparse_direct

__all__ = [
    'conv_nd', 'ALGORITHMS', 'ALIASES', 'ALGOS', 'ENV_VAR', 'ALGORITHM_FNS', 'check_algo',
    'resolve_algo', 'select_algo', 'benchmark_algo', 'clear_benchmark_cache', 'heuristic_algo',
    'CostModel', 'FITTED', 'conv_direct', 'conv_channels_last', 'conv_fft', 'conv_sparse_direct',
    'fft_lengths', 'fft_kernel_spectrum', 'kernel_spectrum_for', 'native_fft_applies',
    'LargeKernelConv1d', 'LargeKernelConv2d', 'LargeKernelConv3d', 'LargeKernelDepthwiseConv2d'
]
