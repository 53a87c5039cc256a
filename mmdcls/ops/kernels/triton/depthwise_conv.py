"""Triton kernel of the depthwise stride-1 correlation: the forward convolution and the input
gradient (the output gradient correlated with the kernel rotated by 180 degrees).

One program computes a tile of BLOCK_C channels x BLOCK_H x BLOCK_W output pixels of one image:
for each of the kh * kw taps it loads the shifted input tile (zero outside the image, which is
the zero padding) and the tap's BLOCK_C weights, and accumulates in fp32; the tile's loads
overlap from tap to tap, so they hit the L1 cache. Tensors are addressed through their strides:
NCHW (columns contiguous) and channels-last (channels contiguous) inputs run the same code, with
tile shapes tuned for each layout (wide rows for NCHW, many channels for channels-last), so
that the contiguous axis is loaded coalesced.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .depthwise_args import memory_format, output_size

# Tile configurations (BLOCK_C, BLOCK_H, BLOCK_W, num_warps) autotuned per layout, dtype and
# shape. Channels-last: a warp spans the contiguous channels; NCHW: it spans a row.
# yapf: disable
_CHANNELS_LAST_TILES = ((32, 8, 16, 4), (32, 4, 8, 4), (64, 4, 8, 4), (16, 8, 16, 4),
                        (64, 8, 8, 8), (128, 4, 4, 8))
_NCHW_TILES = ((1, 8, 64, 4), (1, 16, 32, 4), (2, 8, 32, 4), (4, 4, 32, 4), (1, 16, 64, 8),
               (4, 8, 32, 8))
# yapf: enable
#: the one tile under the interpreter: small, and smaller than the test images so that they
#: span several tiles and channel blocks
INTERPRETER_TILE = (4, 4, 8, 1)


def tile_configs(tiles) -> list:
    """``triton.Config`` of each (BLOCK_C, BLOCK_H, BLOCK_W, num_warps) of ``tiles``; the
    interpreter's one tile under the interpreter."""
    tiles = (INTERPRETER_TILE, ) if INTERPRETED else tiles
    return [
        triton.Config(dict(BLOCK_C=c, BLOCK_H=h, BLOCK_W=w), num_warps=warps)
        for c, h, w, warps in tiles
    ]


@triton.jit
def depthwise_correlation_kernel(src, weight, bias, dst,
                                 C, SRC_H, SRC_W, OUT_H, OUT_W, OFFSET_H, OFFSET_W,
                                 src_sn, src_sc, src_sh, src_sw,
                                 dst_sn, dst_sc, dst_sh, dst_sw,
                                 w_sc, w_si, w_sj,
                                 KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                                 FLIP: tl.constexpr, SKIP_ZERO_TAPS: tl.constexpr,
                                 BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr,
                                 BLOCK_W: tl.constexpr):  # yapf: disable
    """dst[n, c, y, x] = bias[c] + sum_ij weight[c, i', j'] * src[n, c, y + i - OFFSET_H,
    x + j - OFFSET_W], src zero outside SRC_H x SRC_W; (i', j') = (i, j), or (KH-1-i, KW-1-j)
    when FLIP. OFFSET may be negative (the input gradient of a padding beyond k - 1).

    Grid: (N * row tiles * column tiles, channel blocks). Loop bounds are compile-time
    constants (triton 3.6's interpreter cannot loop to a runtime bound under numpy >= 2.4)."""
    pid_pixels = tl.program_id(0)
    pid_c = tl.program_id(1)
    tiles_w = tl.cdiv(OUT_W, BLOCK_W)
    tiles_per_image = tl.cdiv(OUT_H, BLOCK_H) * tiles_w
    n = pid_pixels // tiles_per_image
    tile = pid_pixels % tiles_per_image
    ys = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
    xs = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < C

    src_channels = src + n.to(tl.int64) * src_sn + cs[:, None, None] * src_sc
    weight_channels = weight + cs * w_sc
    src_xs0 = xs - OFFSET_W  # input column under tap column 0
    acc = tl.zeros((BLOCK_C, BLOCK_H, BLOCK_W), dtype=tl.float32)
    for i in range(KH):
        src_ys = ys + (i - OFFSET_H)
        rows_ok = c_ok[:, None, None] & ((src_ys >= 0) & (src_ys < SRC_H))[None, :, None]
        src_rows = src_channels + (src_ys * src_sh)[None, :, None]
        if FLIP:
            weight_row = weight_channels + (KH - 1 - i) * w_si + (KW - 1) * w_sj
            w_sj_signed = -w_sj
        else:
            weight_row = weight_channels + i * w_si
            w_sj_signed = w_sj
        for j in range(KW):
            taps = tl.load(weight_row + j * w_sj_signed, mask=c_ok, other=0.0).to(tl.float32)
            src_xs = src_xs0 + j
            ok = rows_ok & ((src_xs >= 0) & (src_xs < SRC_W))[None, None, :]
            ptrs = src_rows + (src_xs * src_sw)[None, None, :]
            if SKIP_ZERO_TAPS:
                # a scalar branch: the tap is skipped when it is zero in every channel of the
                # block (a non-finite input under it then does not reach the output)
                if tl.sum((taps != 0).to(tl.int32), axis=0) > 0:
                    values = tl.load(ptrs, mask=ok, other=0.0).to(tl.float32)
                    acc += values * taps[:, None, None]
            else:
                values = tl.load(ptrs, mask=ok, other=0.0).to(tl.float32)
                acc += values * taps[:, None, None]
    if HAS_BIAS:
        acc += tl.load(bias + cs, mask=c_ok, other=0.0).to(tl.float32)[:, None, None]

    out_ok = c_ok[:, None, None] & (ys < OUT_H)[None, :, None] & (xs < OUT_W)[None, None, :]
    dst_ptrs = (
        dst + n.to(tl.int64) * dst_sn + cs[:, None, None] * dst_sc + (ys * dst_sh)[None, :, None] +
        (xs * dst_sw)[None, None, :])
    tl.store(dst_ptrs, acc.to(dst.dtype.element_ty), mask=out_ok)


#: whether the kernels run in triton's interpreter (``TRITON_INTERPRET=1`` when triton decorated
#: them): on CPU tensors, slowly, so with one small tile
INTERPRETED = type(depthwise_correlation_kernel).__name__ == 'InterpretedFunction'

_TUNING_KEY = ['C', 'OUT_H', 'OUT_W', 'KH', 'KW', 'FLIP', 'SKIP_ZERO_TAPS']


def _autotuned(tiles):
    """:func:`depthwise_correlation_kernel` autotuned over ``tiles``."""
    return triton.autotune(tile_configs(tiles), key=_TUNING_KEY)(depthwise_correlation_kernel)


_correlate_channels_last = _autotuned(_CHANNELS_LAST_TILES)
_correlate_nchw = _autotuned(_NCHW_TILES)


def _weight_view(kernel: Tensor, channels_last: bool) -> Tensor:
    """kernel (C, 1, kh, kw) as a (C, kh, kw) view whose channels are contiguous for a
    channels-last launch (one coalesced load of a tap's BLOCK_C weights), else its rows."""
    c, _, kh, kw = kernel.shape
    if channels_last:
        return kernel.reshape(c, kh, kw).permute(1, 2, 0).contiguous().permute(2, 0, 1)
    return kernel.reshape(c, kh, kw).contiguous()


def correlate(src: Tensor, kernel: Tensor, bias, dst: Tensor, offset, flip: bool,
              skip_zero_taps: bool) -> Tensor:
    """Writes into ``dst`` (N, C, OH, OW) the depthwise correlation of ``src`` (N, C, H, W, same
    layout) with ``kernel`` (C, 1, kh, kw) at ``offset`` (see
    :func:`depthwise_correlation_kernel`), plus ``bias`` (C,) or None; returns ``dst``."""
    n, c, src_h, src_w = src.shape
    out_h, out_w = dst.shape[2:]
    if dst.numel() == 0:
        return dst
    channels_last = memory_format(src) == torch.channels_last
    weight = _weight_view(kernel, channels_last)
    launch = _correlate_channels_last if channels_last else _correlate_nchw

    def grid(meta):
        tiles = triton.cdiv(out_h, meta['BLOCK_H']) * triton.cdiv(out_w, meta['BLOCK_W'])
        return (n * tiles, triton.cdiv(c, meta['BLOCK_C']))

    sizes = (c, src_h, src_w, out_h, out_w, offset[0], offset[1])
    strides = (*src.stride(), *dst.stride(), *weight.stride())
    constants = dict(
        KH=kernel.shape[2],
        KW=kernel.shape[3],
        HAS_BIAS=bias is not None,
        FLIP=flip,
        SKIP_ZERO_TAPS=skip_zero_taps)
    launch[grid](src, weight, bias, dst, *sizes, *strides, **constants)
    return dst


def depthwise_forward(input: Tensor, kernel: Tensor, bias, padding, skip_zero_taps: bool) -> Tensor:
    """``F.conv2d(input, kernel, bias, 1, padding, 1, C)`` for checked arguments (see
    :func:`~.depthwise_args.check_arguments`): (N, C, OH, OW) in the input's dtype and memory
    format (:func:`~.depthwise_args.memory_format`); no autograd."""
    layout = memory_format(input)
    input = input.contiguous(memory_format=layout)
    n, c, h, w = input.shape
    out_h, out_w = output_size(h, w, kernel.shape[2:], padding)
    out = torch.empty((n, c, out_h, out_w),
                      dtype=input.dtype,
                      device=input.device,
                      memory_format=layout)
    return correlate(input, kernel, bias, out, padding, False, skip_zero_taps)


def depthwise_grad_input(grad_output: Tensor, kernel: Tensor, input_size, padding,
                         channels_last: bool, skip_zero_taps: bool) -> Tensor:
    """d loss / d input (N, C, H, W), ``input_size`` = (H, W), of :func:`depthwise_forward`
    from ``grad_output`` (N, C, OH, OW): its correlation with the kernel rotated by 180
    degrees at offset (k - 1 - p), negative where the padding exceeded k - 1; channels-last or
    NCHW as the input was."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    grad_output = grad_output.contiguous(memory_format=layout)
    n, c = grad_output.shape[:2]
    grad_input = torch.empty((n, c, *input_size),
                             dtype=grad_output.dtype,
                             device=grad_output.device,
                             memory_format=layout)
    offset = [k - 1 - p for k, p in zip(kernel.shape[2:], padding)]
    return correlate(grad_output, kernel, None, grad_input, offset, True, skip_zero_taps)
