"""Folding DCLS layers into standard convolutions for deployment.

A DCLS layer's output depends on its parameters only through the dense kernel it constructs, so
after training that kernel can be baked into an ordinary convolution: the folded model has no
positions, no construction cost, and only layers every exporter and runtime knows.
"""
import copy
from typing import Optional

import torch
from torch import nn

from mmdcls.ops import DclsLayer
from mmdcls.ops.conv import LargeKernelConv1d, LargeKernelConv2d, LargeKernelConv3d, check_algo

_STANDARD = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_LARGE_KERNEL = {1: LargeKernelConv1d, 2: LargeKernelConv2d, 3: LargeKernelConv3d}


def is_dcls_layer(module: nn.Module) -> bool:
    """True for the DCLS layers of ``mmdcls.ops`` (``Dcls1d/2d/3d``, ``Dcls2dK1d``, ``Dcls3_1d``
    and their subclasses, such as the registered ``DCLS2d`` of ``mmdcls.models.layers``):
    modules with ``construct_kernel()``."""
    return isinstance(module, DclsLayer) and callable(getattr(module, 'construct_kernel', None))


@torch.no_grad()
def fold_dcls_layer(layer: nn.Module,
                    large_kernel: bool = False,
                    conv_algo: Optional[str] = None) -> nn.Module:
    """The convolution equivalent to one DCLS ``layer``: an ``nn.Conv{1,2,3}d`` (or, with
    ``large_kernel``, a :class:`mmdcls.ops.LargeKernelConv2d`-style subclass of it, same state
    dict, faster eager forward, plain Conv when exported) holding the constructed kernel
    (out, in / groups, *dilated_kernel_size) and the bias, with the layer's stride, padding,
    groups, padding mode, device, dtype and training mode."""
    if not is_dcls_layer(layer):
        raise TypeError(f'layer must be a DCLS layer of mmdcls.ops, got {type(layer).__name__}')
    kernel = layer.construct_kernel().detach()
    # the constructed kernel's own shape: Dcls2dK1d / Dcls3_1d kernels are not
    # dilated_kernel_size in every axis
    ndim, kernel_size = kernel.dim() - 2, tuple(kernel.shape[2:])
    kwargs = dict(
        stride=layer.stride,
        padding=layer.padding,
        dilation=1,
        groups=layer.groups,
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
        device=kernel.device,
        dtype=kernel.dtype)
    if large_kernel:
        conv = _LARGE_KERNEL[ndim](
            layer.in_channels, layer.out_channels, kernel_size, conv_algo=conv_algo, **kwargs)
    else:
        conv = _STANDARD[ndim](layer.in_channels, layer.out_channels, kernel_size, **kwargs)
    conv.weight.copy_(kernel)
    if layer.bias is not None:
        conv.bias.copy_(layer.bias)
    conv.train(layer.training)
    return conv


def fold_dcls(model: nn.Module,
              large_kernel: bool = False,
              conv_algo: Optional[str] = None,
              inplace: bool = False) -> nn.Module:
    """Replaces every DCLS layer of ``model`` by its folded convolution
    (:func:`fold_dcls_layer`); outputs are unchanged.

    Args:
        model: any module (a DCLS layer itself, a backbone, a detector, ...).
        large_kernel: use ``mmdcls.ops.LargeKernelConv{1,2,3}d`` (subclasses of
            ``nn.Conv{1,2,3}d`` computing through ``mmdcls.ops.conv``; exported as a
            standard Conv) instead of plain ``nn.Conv{1,2,3}d``.
        conv_algo: the ``conv_algo`` of those large-kernel convs (only with ``large_kernel``).
        inplace: modify ``model`` instead of a deep copy.

    Returns:
        The folded model (``model`` itself if ``inplace``; a new conv if ``model`` is a DCLS
        layer).
    """
    check_algo(conv_algo, 'conv_algo')
    if conv_algo is not None and not large_kernel:
        raise ValueError('conv_algo applies only with large_kernel=True (plain nn.Conv layers '
                         'always run torch\'s own convolution)')
    if is_dcls_layer(model):
        return fold_dcls_layer(model, large_kernel, conv_algo)
    if not inplace:
        model = copy.deepcopy(model)
    # Collect first: replacing while iterating named_modules would skip siblings.
    targets = [(name, module) for name, module in model.named_modules() if is_dcls_layer(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, fold_dcls_layer(module, large_kernel, conv_algo))
    return model
