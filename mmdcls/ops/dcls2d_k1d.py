"""``Dcls2dK1d``: a 2-D convolution whose kernel is a 1-D DCLS kernel along one axis, drop-in
for ``DCLS.construct.modules.Dcls2dK1d`` of ``dcls`` 0.1.1."""
from typing import Optional, Tuple, Union

from .learned_axis import _LearnedAxisDcls

#: ``flat_dim`` -> the kernel axis (0: rows / H, 1: columns / W) carrying the positions
_LEARNED_AXIS = {0: 0, 1: 1}


class Dcls2dK1d(_LearnedAxisDcls):
    """2-D DCLS convolution with positions learned along one kernel axis: input
    (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    The kernel is ``kernel_count`` weights per (out, in / groups) pair placed at learned
    positions on a line of ``dilated_kernel_size`` taps (as :class:`~mmdcls.ops.Dcls1d`'s),
    laid out, exactly as in ``dcls`` 0.1.1 (``kernel.unsqueeze(-1 - flat_dim)``):

    * ``flat_dim=0`` (default): kernel (out, in / groups, dilated_kernel_size, 1), the positions
      run along H (kernel rows);
    * ``flat_dim=1``: kernel (out, in / groups, 1, dilated_kernel_size), along W.

    ``stride`` and ``padding`` are 2-D, (H, W) as for ``nn.Conv2d`` (``padding='same'``: the
    learned axis padded by ``dilated_kernel_size // 2``, the flat one not at all).

    Parameters (as ``dcls`` 0.1.1, whose ``Dcls2dK1d`` is a ``_DclsNd`` with one dilated
    axis): ``weight`` (out, in / groups, kernel_count), ``P`` (1, out, in / groups,
    kernel_count) ~ N(0, 0.5) clamped to +- dilated_kernel_size // 2, ``SIG`` like ``P`` for
    ``gauss`` (0.23) / ``max`` (0), ``bias`` (out). Every version; default ``'v1'`` as there.

    ``conv_algo`` (keyword only, not in ``dcls``): the convolution algorithm of
    :func:`~mmdcls.ops.conv_nd`, None for its default selection.
    """
    _conv_ndim = 2
    _reference_init = 'normal'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_count: int,
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int], str] = 0,
                 dilated_kernel_size: Union[int, Tuple[int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 version: str = 'v1',
                 flat_dim: int = 0,
                 *,
                 conv_algo: Optional[str] = None) -> None:
        super().__init__()
        if isinstance(flat_dim, bool) or flat_dim not in _LEARNED_AXIS:
            # dcls 0.1.1 would unsqueeze the kernel elsewhere and convolve garbage (or fail
            # deep inside F.conv2d)
            raise ValueError(f'flat_dim must be 0 (positions along H) or 1 (along W), '
                             f'got {flat_dim!r}')
        self.flat_dim = flat_dim
        self._setup(in_channels, out_channels, kernel_count, stride, padding, dilated_kernel_size,
                    groups, bias, padding_mode, version, conv_algo)

    @property
    def learned_axis(self) -> int:
        """The kernel axis (0: H, 1: W) along which the positions are learned."""
        return _LEARNED_AXIS[self.flat_dim]

    def _row_shape(self) -> Tuple[int, ...]:
        return ()

    def _kernel_shape(self) -> Tuple[int, int]:
        size = self.dilated_kernel_size[0]
        return (size, 1) if self.learned_axis == 0 else (1, size)

    def _extra_repr_shape(self) -> str:
        return f'dilated_kernel_size={self.dilated_kernel_size}, flat_dim={self.flat_dim}'
