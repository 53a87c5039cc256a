"""``ConvAlgorithm``: what every convolution algorithm of :data:`mmdcls.ops.conv.ALGORITHMS`
declares. Adding an algorithm is one module defining a subclass and one entry in
:mod:`.algorithms`."""
from typing import Any, Callable, Optional, Tuple

import torch
from torch import Tensor

from .problem import ConvProblem


class ConvAlgorithm:
    """One exact way of computing ``F.conv{1,2,3}d(input, kernel, bias, stride, padding, 1,
    groups)``, differentiable in input, kernel and bias.

    A subclass sets :attr:`name` and :attr:`devices` and implements :meth:`why_not`,
    :meth:`cost` and :meth:`run`; optionally :meth:`prepare` (state reusable for a constant
    kernel, e.g. its FFT spectra) and :attr:`propagates_non_finite`.
    """
    #: the name ``conv_algo=`` / ``$MMDCLS_CONV_ALGO`` select it by
    name: str = ''
    #: device types (``torch.device.type``) it runs on
    devices: Tuple[str, ...] = ()
    #: whether a NaN / inf input reaches exactly the outputs whose window covers it, as in
    #: ``F.conv`` (algorithms that skip zero taps or mix a whole plane, like an FFT, do not;
    #: ``conv_nd`` then restores ``F.conv``'s semantics around them)
    propagates_non_finite: bool = True
    #: where it does not: whether a non-finite input makes every output of its (sample,
    #: channel) plane non-finite instead (an FFT mixes the whole plane), so that one output per
    #: plane tells whether the input was finite
    non_finite_fills_planes: bool = False

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        """None when the algorithm computes ``problem``, else why not (one phrase). The base
        checks the device; subclasses add their own conditions."""
        if problem.device_type not in self.devices:
            return f'it runs on {"/".join(self.devices)} tensors, not {problem.device_type}'
        return None

    def applies(self, problem: ConvProblem) -> bool:
        return self.why_not(problem) is None

    def cost(self, problem: ConvProblem) -> Optional[float]:
        """Predicted cost of ``problem`` on its device, in multiply-adds per element of one
        (sample, output channel) input-sized map (comparable across algorithms on a device);
        None where no constants were fitted for the device (``'auto'`` then measures)."""
        return None

    def prepare(self, kernel: Tensor, problem: ConvProblem) -> Any:
        """State derived from ``kernel`` alone that :meth:`run` can take as ``prepared`` for
        every call with the same kernel and an equal :meth:`prepare_key`; None: nothing."""
        return None

    def prepare_key(self, problem: ConvProblem) -> Optional[tuple]:
        """What :meth:`prepare`'s result depends on besides the kernel; None: it prepares
        nothing for ``problem``."""
        return None

    def run(self,
            input: Tensor,
            kernel: Tensor,
            bias: Optional[Tensor],
            problem: ConvProblem,
            prepared: Any = None) -> Tensor:
        """The convolution: (N, C_out, *out_size) of ``problem``; ``prepared``: this
        algorithm's :meth:`prepare` of ``kernel``, when known."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r}, devices={self.devices})'


def why_not_depthwise_2d_stride_one(problem: ConvProblem) -> Optional[str]:
    """None for a 2-D depthwise stride-1 convolution (what the hand-written depthwise kernels
    compute), else why not."""
    if problem.ndim != 2 or not problem.depthwise:
        return 'it computes 2-D depthwise convolutions only (C_out == C_in == groups)'
    if not problem.stride_one:
        return f'it computes stride 1 only, got stride {problem.stride}'
    return None


def run_as_f_conv(problem: ConvProblem, fn: Callable[..., Tensor], input: Tensor, kernel: Tensor,
                  bias: Optional[Tensor], *args) -> Tensor:
    """``fn(input, kernel, bias, *args)`` in the dtype ``F.conv`` computes in: autocast does not
    cast what reaches a custom autograd Function or kernel, so under autocast the tensors are
    cast to ``problem.compute_dtype`` as ``F.conv`` would and ``fn`` runs with autocast off."""
    if problem.autocast_dtype is None:
        return fn(input, kernel, bias, *args)
    dtype = problem.compute_dtype
    with torch.autocast(problem.device_type, enabled=False):
        return fn(
            input.to(dtype), kernel.to(dtype), None if bias is None else bias.to(dtype), *args)
