"""Triton kernel of the kernel gradient of the depthwise stride-1 correlation:
d loss / d kernel[c, i, j] = sum over n, y, x of grad_output[n, c, y, x] * input[n, c,
y + i - ph, x + j - pw] (zero outside the input).

Deterministic, without atomics: the output-gradient pixels are cut into units (one image's
REGION_H x REGION_W pixels), the units into groups of UNITS_PER_GROUP; program (group, channel
block, kernel row i) sums its group's products for the taps (i, 0..kw-1) in fp32 registers and
writes them to its own slot of a (groups, C, kh, kw) fp32 buffer, which a second pass sums over
the groups. The number of groups is set for about :data:`TARGET_PROGRAMS` programs, so that the
buffer stays small (about TARGET_PROGRAMS * 32 * kw floats) while the GPU is kept busy.
Within a program, a tile of the output gradient is loaded once and multiplied by the kw shifted
input tiles of the kernel row.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .depthwise_args import memory_format, output_size
from .depthwise_conv import tile_configs

#: pixels (rows, columns) of the output gradient in one unit of work; multiples of every
#: tile's BLOCK_H, BLOCK_W
REGION = (32, 64)
#: about how many programs a kernel-gradient launch has (its groups are sized for it)
TARGET_PROGRAMS = 1024
#: the channel block the group count assumes (the autotuned one may differ)
_NOMINAL_BLOCK_C = 32

# (BLOCK_C, BLOCK_H, BLOCK_W, num_warps), as in depthwise_conv: channels-last tiles span
# channels, NCHW tiles span a row
_CHANNELS_LAST_TILES = ((32, 4, 8, 4), (16, 8, 16, 4), (32, 8, 8, 8), (64, 4, 8, 8), (64, 2, 8, 8))
_NCHW_TILES = ((1, 8, 64, 4), (4, 4, 32, 4), (1, 16, 64, 8), (2, 8, 32, 8))


@triton.jit
def depthwise_grad_kernel_partials(grad_out, src, partials,
                                   C, SRC_H, SRC_W, OUT_H, OUT_W, PAD_H, PAD_W,
                                   units, regions_w, regions_per_image,
                                   go_sn, go_sc, go_sh, go_sw,
                                   src_sn, src_sc, src_sh, src_sw,
                                   KH: tl.constexpr, KW: tl.constexpr, BLOCK_KW: tl.constexpr,
                                   REGION_H: tl.constexpr, REGION_W: tl.constexpr,
                                   UNITS_PER_GROUP: tl.constexpr, BLOCK_C: tl.constexpr,
                                   BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):  # yapf: disable
    """partials[group, c, i, j] = sum over the group's units of grad_out * shifted src.

    Grid: (groups, channel blocks, KH). Loop bounds are compile-time constants (triton 3.6's
    interpreter cannot loop to a runtime bound under numpy >= 2.4)."""
    group = tl.program_id(0)
    pid_c = tl.program_id(1)
    i = tl.program_id(2)
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < C
    js = tl.arange(0, BLOCK_KW)
    acc = tl.zeros((BLOCK_C, BLOCK_KW), dtype=tl.float32)
    for k in range(UNITS_PER_GROUP):
        unit = group * UNITS_PER_GROUP + k
        if unit < units:
            n = unit // regions_per_image
            region = unit % regions_per_image
            y0 = (region // regions_w) * REGION_H
            x0 = (region % regions_w) * REGION_W
            go_channels = grad_out + n.to(tl.int64) * go_sn + cs[:, None, None] * go_sc
            src_channels = src + n.to(tl.int64) * src_sn + cs[:, None, None] * src_sc
            for dy in range(0, REGION_H, BLOCK_H):
                if y0 + dy < OUT_H:
                    ys = y0 + dy + tl.arange(0, BLOCK_H)
                    src_ys = ys + (i - PAD_H)
                    rows_ok = c_ok[:, None, None] & (ys < OUT_H)[None, :, None]
                    src_rows_ok = rows_ok & ((src_ys >= 0) & (src_ys < SRC_H))[None, :, None]
                    src_rows = src_channels + (src_ys * src_sh)[None, :, None]
                    for dx in range(0, REGION_W, BLOCK_W):
                        if x0 + dx < OUT_W:
                            xs = x0 + dx + tl.arange(0, BLOCK_W)
                            out_ok = rows_ok & (xs < OUT_W)[None, None, :]
                            grads = tl.load(
                                go_channels + (ys * go_sh)[None, :, None] +
                                (xs * go_sw)[None, None, :],
                                mask=out_ok,
                                other=0.0).to(tl.float32)
                            # inputs read only under valid outputs: a non-finite input under a
                            # masked-out output pixel must not reach the sum
                            src_ok = src_rows_ok & (xs < OUT_W)[None, None, :]
                            src_xs0 = xs - PAD_W  # input column under tap column 0
                            for j in range(KW):
                                src_xs = src_xs0 + j
                                ok = src_ok & ((src_xs >= 0) & (src_xs < SRC_W))[None, None, :]
                                values = tl.load(
                                    src_rows + (src_xs * src_sw)[None, None, :], mask=ok,
                                    other=0.0).to(tl.float32)
                                tap_sum = tl.sum(tl.sum(grads * values, axis=2), axis=1)
                                acc += tl.where(js[None, :] == j, tap_sum[:, None], 0.0)
    slots = (partials + (group.to(tl.int64) * C + cs[:, None]) * (KH * KW) + i * KW + js[None, :])
    tl.store(slots, acc, mask=c_ok[:, None] & (js < KW)[None, :])


_TUNING_KEY = ['C', 'OUT_H', 'OUT_W', 'KH', 'KW', 'UNITS_PER_GROUP']


def _autotuned(tiles):
    """:func:`depthwise_grad_kernel_partials` autotuned over ``tiles``."""
    return triton.autotune(tile_configs(tiles), key=_TUNING_KEY)(depthwise_grad_kernel_partials)


_partials_channels_last = _autotuned(_CHANNELS_LAST_TILES)
_partials_nchw = _autotuned(_NCHW_TILES)


def _work_split(units: int, channels: int, kernel_rows: int):
    """(units per group, groups): groups for about :data:`TARGET_PROGRAMS` programs of
    (group, channel block, kernel row), at most one per unit; units per group a power of two
    (one compiled kernel per value)."""
    programs_per_group = triton.cdiv(channels, _NOMINAL_BLOCK_C) * kernel_rows
    wanted = max(1, min(units, triton.cdiv(TARGET_PROGRAMS, programs_per_group)))
    per_group = triton.next_power_of_2(triton.cdiv(units, wanted))
    return per_group, triton.cdiv(units, per_group)


def depthwise_grad_kernel(grad_output: Tensor, input: Tensor, kernel_size, padding) -> Tensor:
    """d loss / d kernel (C, 1, kh, kw), in the input's dtype, of the depthwise stride-1
    correlation of ``input`` (N, C, H, W) zero-padded by ``padding`` = (ph, pw), from
    ``grad_output`` (N, C, OH, OW); fp32 sums, deterministic for a given tile choice."""
    layout = memory_format(input)
    input = input.contiguous(memory_format=layout)
    grad_output = grad_output.contiguous(memory_format=layout)
    n, c, h, w = input.shape
    kh, kw = kernel_size
    out_h, out_w = output_size(h, w, kernel_size, padding)
    if n == 0:
        return input.new_zeros((c, 1, kh, kw))
    regions_h, regions_w = triton.cdiv(out_h, REGION[0]), triton.cdiv(out_w, REGION[1])
    units = n * regions_h * regions_w
    per_group, groups = _work_split(units, c, kh)
    partials = torch.empty((groups, c, kh, kw), dtype=torch.float32, device=input.device)
    launch = _partials_channels_last if layout == torch.channels_last else _partials_nchw

    def grid(meta):
        return (groups, triton.cdiv(c, meta['BLOCK_C']), kh)

    sizes = (c, h, w, out_h, out_w, padding[0], padding[1], units, regions_w, regions_h * regions_w)
    constants = dict(
        KH=kh,
        KW=kw,
        BLOCK_KW=triton.next_power_of_2(kw),
        REGION_H=REGION[0],
        REGION_W=REGION[1],
        UNITS_PER_GROUP=per_group)
    launch[grid](grad_output, input, partials, *sizes, *grad_output.stride(), *input.stride(),
                 **constants)
    return partials.sum(0).unsqueeze(1).to(input.dtype)
