"""``'triton'``: the Triton depthwise convolution (:mod:`mmdcls.ops.kernels.triton`: a tile of
pixels x channels per program looping over the kernel's taps, fp32 sums, kernel gradient as
per-tile partial sums reduced without atomics), with its gradients; 2-D depthwise stride-1
convs of float32 / float16 / bfloat16 CUDA tensors, NCHW or channels-last (the output keeps
the layout). Registered as custom ops: ``torch.compile`` keeps it as one opaque op. Under
Triton's interpreter (``TRITON_INTERPRET=1``, tests without a GPU) it also runs on CPU
tensors, never chosen by ``'auto'`` there."""
import math
from typing import Optional, Tuple

from ...kernels import triton as triton_kernels
from ...kernels.triton.depthwise_args import MAX_CHANNELS, MAX_IMAGE_ELEMENTS, SUPPORTED_DTYPES
from ..algorithm import ConvAlgorithm, run_as_f_conv, why_not_depthwise_2d_stride_one
from ..problem import ConvProblem


class TritonDepthwise(ConvAlgorithm):
    name = 'triton'

    @property
    def devices(self) -> Tuple[str, ...]:
        return ('cuda', 'cpu') if triton_kernels.interpreter_enabled() else ('cuda', )

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        reason = super().why_not(problem)
        if reason is not None:
            return reason
        reason = why_not_depthwise_2d_stride_one(problem)
        if reason is not None:
            return reason
        if problem.compute_dtype not in SUPPORTED_DTYPES or (problem.autocast_dtype is None
                                                             and not problem.same_dtypes):
            return (f'it computes in {", ".join(str(d) for d in SUPPORTED_DTYPES)}, got '
                    f'{problem.compute_dtype}')
        per_image = problem.in_channels * max(
            math.prod(problem.spatial), math.prod(problem.out_size))
        if problem.in_channels > MAX_CHANNELS or per_image > MAX_IMAGE_ELEMENTS:
            return (f'it takes at most {MAX_CHANNELS} channels and {MAX_IMAGE_ELEMENTS} '
                    f'elements per image, got {problem.input_shape}')
        usable, reason = triton_kernels.usable_on(problem.device)
        if not usable:
            return reason
        return None

    def cost(self, problem: ConvProblem) -> Optional[float]:
        # no fitted constants: measured on CUDA; on CPU only the (slow) interpreter runs it
        return math.inf if problem.device_type == 'cpu' else None

    def run(self, input, kernel, bias, problem, prepared=None):
        return run_as_f_conv(problem, triton_kernels.depthwise_conv2d, input, kernel, bias,
                             problem.padding)
