"""Dispatch to the fused C construction (:mod:`mmdcls.ops.kernels.cpu.construction`) for 2-D
kernels of float32 / float64 CPU tensors: its autograd Function, which hands the C code the
conventions of :mod:`.conventions`. :func:`mmdcls.ops.construct.construct_kernel` takes it
where :func:`mmdcls.ops.kernels.cpu.usable` holds."""
import torch

from ..kernels import cpu
from .conventions import (GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS, SIGMA_FLOOR, VERSIONS_WITH_SIGMA,
                          position_axes)


class _ConstructNative2d(torch.autograd.Function):
    """Every version for 2-D kernels on CPU through the fused C library of
    :mod:`mmdcls.ops.kernels.cpu` (same arithmetic as the torch paths of :mod:`.bilinear` and
    :mod:`.profiles`, row by row in cache); backward recomputes each row's interpolation (the
    Gaussian's axis-0 half only, when the forward kept the axis-1 profiles: see
    ``cpu.SAVED_PROFILES_MAX_RATIO``). Takes the parameters in their own shapes (weight
    (out, in / groups, K), P / SIG (2, out, in / groups, K)) and returns the kernel
    (out, in / groups, S0, S1): no view nodes around it in the autograd graph, whose per-node
    cost is a noticeable part of a construction."""

    @staticmethod
    def forward(ctx, weight, P, SIG, sizes, version, grad_needed):
        weight, P = weight.contiguous(), P.contiguous()
        components = position_axes(version, 2)
        layout = [components.index(axis) for axis in range(2)]
        ctx.sizes, ctx.version, ctx.layout = sizes, version, layout
        if version in VERSIONS_WITH_SIGMA:
            SIG = SIG.contiguous()
            # Gaussian profiles (an exp per tap) are the main cost: the backward reuses the
            # forward's axis-1 half when that memory stays small next to the kernel
            save = grad_needed and version == 'gauss' and cpu.saved_profiles_size(
                sizes, weight.shape[-1], weight.dtype) <= (
                    cpu.SAVED_PROFILES_MAX_RATIO * sizes[0] * sizes[1])
            kernel, saved = cpu.dense_forward(
                weight,
                P,
                SIG,
                sizes,
                layout,
                SIGMA_FLOOR[version],
                version,
                save,
                eps=NORMALISATION_EPS,
                exponent_floor=GAUSS_EXPONENT_FLOOR)
            ctx.saved = saved
            ctx.save_for_backward(weight, P, SIG)
            return kernel
        ctx.save_for_backward(weight, P)
        return cpu.bilinear_forward(weight, P, sizes, layout, version, eps=NORMALISATION_EPS)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel):
        grad_kernel = grad_kernel.contiguous()
        if ctx.version in VERSIONS_WITH_SIGMA:
            weight, P, SIG = ctx.saved_tensors
            grads = cpu.dense_backward(
                weight,
                P,
                SIG,
                grad_kernel,
                ctx.sizes,
                ctx.layout,
                SIGMA_FLOOR[ctx.version],
                ctx.version,
                ctx.saved,
                eps=NORMALISATION_EPS,
                exponent_floor=GAUSS_EXPONENT_FLOOR)
            ctx.saved = None
            return (*grads, None, None, None)
        weight, P = ctx.saved_tensors
        grads = cpu.bilinear_backward(
            weight, P, grad_kernel, ctx.sizes, ctx.layout, ctx.version, eps=NORMALISATION_EPS)
        return (*grads, None, None, None, None)
