"""The convolution algorithms, one module each, and :data:`ALGORITHMS`, the table
:func:`~mmdcls.ops.conv.conv_nd` selects from.

An algorithm is a :class:`~mmdcls.ops.conv.algorithm.ConvAlgorithm`: its ``devices``,
``why_not(problem)`` (when it does not apply), ``cost(problem)`` (its fitted constants, per
device) and ``run(...)``, optionally ``prepare(kernel, problem)``. Adding one is a module here
and an entry below (and the conformance suite, tests/test_ops/test_conv/, runs it).
"""
from typing import Dict

from ..algorithm import ConvAlgorithm
from .c_fft import CFFT
from .channels_last import ChannelsLast
from .direct import Direct
from .fft import TorchFFT
from .sparse_direct import SparseDirect
from .triton import TritonDepthwise

#: name -> algorithm. Order breaks cost ties: on CPU ``'channels_last'`` and ``'direct'`` are
#: costed alike (the same arithmetic) and the first that applies wins.
ALGORITHMS: Dict[str, ConvAlgorithm] = {
    algorithm.name: algorithm
    for algorithm in (ChannelsLast(), Direct(), TorchFFT(), CFFT(), SparseDirect(),
                      TritonDepthwise())
}

__all__ = ['ALGORITHMS', 'ConvAlgorithm']
