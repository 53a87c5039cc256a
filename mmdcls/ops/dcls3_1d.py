"""``Dcls3_1d``: a 3-D convolution with dense kernels on two axes and learned positions on the
third, drop-in for ``DCLS.construct.modules.Dcls3_1d`` of ``dcls`` 0.1.1 (learnable delays of
spiking / video models)."""
from typing import Optional, Tuple, Union

from .dcls import as_ntuple
from .learned_axis import _LearnedAxisDcls


class Dcls3_1d(_LearnedAxisDcls):
    """3-D DCLS convolution, positions learned along the last kernel axis only: input
    (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out).

    Kernel (out, in / groups, dense_kernel_size[0], dense_kernel_size[1],
    dilated_kernel_size): each of the ``dense_kernel_size`` (D, H) taps has its own
    ``kernel_count`` weights at its own learned positions along W (the last axis), as in
    ``dcls`` 0.1.1's ``ConstructKernel3_1d``. ``stride`` and ``padding`` are 3-D, (D, H, W)
    as for ``nn.Conv3d`` (``padding='same'`` needs odd sizes).

    Parameters (as ``dcls`` 0.1.1, its ``_DclsN_Md``): ``weight`` (out, in / groups,
    dense[0], dense[1], kernel_count), ``P`` (1, out, in / groups, dense[0], dense[1],
    kernel_count) ~ U(-lim, lim) with lim = dilated_kernel_size // 2, ``SIG`` like ``P``
    for ``gauss`` (0.23) / ``max`` (0), ``bias`` (out).

    Versions ``'v1'``, ``'gauss'`` (default) and ``'max'``: ``dcls`` 0.1.1 has no ``v0``
    construction for this layer (its forward raises); here the constructor says so.

    ``conv_algo`` (keyword only, not in ``dcls``): the convolution algorithm of
    :func:`~mmdcls.ops.conv_nd`, None for its default selection.
    """
    _conv_ndim = 3
    _versions = ('v1', 'gauss', 'max')
    _reference_init = 'uniform'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_count: int,
                 stride: Union[int, Tuple[int, int, int]] = 1,
                 padding: Union[int, Tuple[int, int, int], str] = 0,
                 dense_kernel_size: Union[int, Tuple[int, int]] = 1,
                 dilated_kernel_size: Union[int, Tuple[int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 version: str = 'gauss',
                 *,
                 conv_algo: Optional[str] = None) -> None:
        super().__init__()
        self.dense_kernel_size = as_ntuple(dense_kernel_size, 2, 'dense_kernel_size')
        if any(s < 1 for s in self.dense_kernel_size):
            raise ValueError(f'dense_kernel_size must be positive, got '
                             f'{self.dense_kernel_size}')
        self._setup(in_channels, out_channels, kernel_count, stride, padding, dilated_kernel_size,
                    groups, bias, padding_mode, version, conv_algo)

    def _row_shape(self) -> Tuple[int, int]:
        return self.dense_kernel_size

    def _kernel_shape(self) -> Tuple[int, int, int]:
        return (*self.dense_kernel_size, self.dilated_kernel_size[0])

    def _extra_repr_shape(self) -> str:
        return (f'dense_kernel_size={self.dense_kernel_size}, '
                f'dilated_kernel_size={self.dilated_kernel_size}')
