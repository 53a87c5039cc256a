"""``'direct'``: ``F.conv{1,2,3}d`` on the tensors as given, the reference every other
algorithm matches (oneDNN on CPU; on CUDA torch's own depthwise kernel for NCHW input, cuDNN
otherwise)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from ...torch_compat import cpu_conv_computes
from ..algorithm import ConvAlgorithm
from ..problem import ConvProblem

#: ``F.conv`` by number of spatial dimensions
CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

#: kernels of at most this many taps always run dense on CPU: below it no other algorithm
#: measured faster on this project's CPU (3x3 and 5x5 convs of ResNet / ConvNeXt maps)
SMALL_KERNEL_TAPS = 25


def dense_cpu_cost(problem: ConvProblem) -> float:
    """The CPU cost of a dense convolution: ``taps * (C_in / groups) * prod(out) / prod(S)``
    multiply-adds per element of an input-sized map; 0 for small kernels (always dense)."""
    if problem.taps <= SMALL_KERNEL_TAPS:
        return 0.0
    size = out = 1
    for s, o in zip(problem.spatial, problem.out_size):
        size, out = size * s, out * o
    return problem.taps * problem.in_per_group * out / size


def why_f_conv_not(problem: ConvProblem) -> Optional[str]:
    """None when ``F.conv`` computes ``problem``'s dtype on its device, else why not (the one
    gap: float16 on the CPU before torch 2.2)."""
    if problem.device_type == 'cpu' and not cpu_conv_computes(problem.compute_dtype):
        return f'this torch has no {problem.compute_dtype} convolution on the CPU'
    return None


def conv_direct(input: Tensor, kernel: Tensor, bias: Optional[Tensor], problem: ConvProblem):
    """``F.conv{1,2,3}d(input, kernel, bias, stride, padding, 1, groups)``."""
    return CONV_FNS[problem.ndim](input, kernel, bias, problem.stride, problem.padding, 1,
                                  problem.groups)


class Direct(ConvAlgorithm):
    name = 'direct'
    devices = ('cpu', 'cuda')

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        return super().why_not(problem) or why_f_conv_not(problem)

    def cost(self, problem: ConvProblem) -> Optional[float]:
        # CPU: the dense arithmetic; 2-D / 3-D ties with 'channels_last' (listed first in the
        # table), whose oneDNN channels-last kernels compute the same faster
        return dense_cpu_cost(problem) if problem.device_type == 'cpu' else None

    def run(self, input, kernel, bias, problem, prepared=None):
        return conv_direct(input, kernel, bias, problem)
