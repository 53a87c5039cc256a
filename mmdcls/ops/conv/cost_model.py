"""``'auto'``'s choice on CPU: a cost model of each algorithm, its fitted constants in one table.

Costs are in multiply-adds per element of one (sample, output channel) input-sized map; the
cheapest algorithm wins (:func:`heuristic_algo`). The constants below (:data:`FITTED`) were
fitted on this project's development CPU (2 threads, idle machine) to per-layer timings of
ConvNeXt-DCLS-T's depthwise layers (17x17 ``v0`` and 23x23 ``gauss`` kernels, maps from 12x12
to 128x128, 1x3x384x384 and 2x3x512x512 inputs): each was set so that ``'auto'`` picks the
algorithm that ``'benchmark'`` measured fastest on those layers (each entry says what it was
fitted against). On another CPU the ranking can differ: ``'benchmark'`` measures instead of
predicting. ``tests/test_ops/test_conv_selection.py`` checks properties of the choice (valid,
exact, within a stated factor of ``'benchmark'``'s fastest), not the fitted outcomes, so a
refit only edits this table.
"""
import math
from typing import Dict, NamedTuple, Optional, Sequence

from .fft import fft_lengths


class CostModel(NamedTuple):
    """The constants of :func:`heuristic_algo`. Dicts are keyed by ``needs_grad``: True for
    training (forward and backward), False for inference."""
    #: cost of one real ``torch.fft`` transform, per point and log2(points)
    fft_per_point: Dict[bool, float]
    #: the same for the C library's FFT convolution (where ``'sparse_direct'`` applies too)
    c_fft_per_point: Dict[bool, float]
    #: cost of one tap of the sparse direct conv per output point
    sparse_direct_per_tap: Dict[bool, float]
    #: added to the sparse direct conv's cost (per input point) for channels-last input
    sparse_direct_channels_last: float
    #: kernels with at most this many taps always use direct convolution
    small_kernel_taps: int


FITTED = CostModel(
    # torch.fft, fitted to the per-layer choices of 'benchmark' on ConvNeXt-DCLS-T (17x17 and
    # 23x23 depthwise, 12x12 to 128x128 maps), FFT against channels-last. Training: FFT on
    # every such layer, which over the whole train step measured 1.08x / 1.10x the 7x7 network
    # at 2x3x512x512 (v0 / gauss) against 1.36x / 1.73x with channels-last direct, for ~25%
    # more peak memory. Inference (refitted for the in-place product, the bias on the
    # zero-frequency bin and, in LargeKernelConv2d, the cached kernel spectrum): FFT for
    # 17x17 / 23x23 depthwise on every ConvNeXt-T map of 16x16 and more (1.2-3.9x faster than
    # channels-last), channels-last on 12x12 where it measured faster.
    fft_per_point={
        True: 3.5,
        False: 6.0
    },
    # The C FFT (depthwise stride-1 2-D float32 / float64 CPU), fitted the same way to
    # per-layer timings on ConvNeXt-T maps (1x384 and 2x512 inputs) against the sparse direct
    # conv: training 1.0-1.8 (FFT faster on every layer, v0 and gauss), inference 1.8-3.1
    # (sparse direct faster for v0 kernels on maps of 48x48 and less, FFT for the rest and for
    # every dense 23x23 Gaussian kernel).
    c_fft_per_point={
        True: 1.5,
        False: 2.3
    },
    # Training: forward and input gradient over the non-zero taps, kernel gradient over all
    # taps. Fitted to per-layer timings against FFT on ConvNeXt-T maps with positions spread as
    # in trained checkpoints (training 0.17-0.24, inference 0.58-1.06 across layers). Against
    # the torch FFT it won for v0 kernels (~108 of 289 taps); against the C FFT it wins for
    # sparser kernels only (v0 as initialised, ~14 taps, on large maps). Inference refitted
    # (was 0.65) on NCHW input, cached spectrum, v0 spread and initialised on 7 ConvNeXt-T maps
    # (12x12 to 128x160): break-even 0.72-0.82 for spread positions, where the sparse direct
    # conv measured 0.85-1.48x the FFT's time; at 0.65 'auto' took the fastest on 10 of 14
    # (1.07x the fastest on average), at 0.82 on 11 (1.02x); channels-last choices unchanged.
    sparse_direct_per_tap={
        True: 0.2,
        False: 0.82
    },
    # It works on NCHW copies and returns NCHW, which a ConvNeXt block (channels-last input,
    # NHWC consumer) lays out twice more, while the C FFT reads and writes channels-last.
    # Fitted on folded v0 ConvNeXt-T layers with that consumer (33-111 across layers), then
    # refitted to the cached-spectrum inference of ConvNeXt-T layers with that consumer: 12 maps
    # of 12x12 to 128x160 at batch 1 and 2, v0 with positions spread (~108 taps) and as
    # initialised (~14 taps), gauss. With positions as initialised the FFT measured 1.1-2.4x
    # faster on 9 maps, the sparse direct conv 1.1-1.2x faster on 3. At 40 'auto' took the
    # fastest algorithm on 27 of the 36 layers (1.18x the fastest on average), at 110 on 33
    # (1.01x), the FFT on all.
    sparse_direct_channels_last=110.0,
    small_kernel_taps=25,
)


def heuristic_algo(input_shape: Sequence[int],
                   kernel_shape: Sequence[int],
                   stride: Sequence[int],
                   padding: Sequence[int],
                   groups: int,
                   device_type: str = 'cpu',
                   needs_grad: bool = True,
                   kernel_spectrum_cached: bool = False,
                   nonzero_taps: Optional[float] = None,
                   channels_last_input: bool = False,
                   model: CostModel = FITTED) -> str:
    """``'auto'``'s choice. CUDA and other devices: ``'direct'`` (use ``'benchmark'`` to time
    the alternatives there). CPU: kernels of at most ``model.small_kernel_taps`` (25) taps run
    direct; otherwise the cost ``model`` (:data:`FITTED`), with ``S`` the input size, ``L`` the
    transform lengths, ``P = prod(L)``:

    * direct: ``taps * (C_in / groups) * prod(S_out) / prod(S)``;
    * FFT: ``c * P * log2(P) / prod(S) * (C_in / C_out + 1 + (C_in / groups) / N)`` for the
      input, output and kernel transforms (the last dropped when ``kernel_spectrum_cached``:
      constant kernels of :class:`~mmdcls.ops.conv.LargeKernelConv2d` in inference), plus
      ``2 * (C_in / groups) * P / prod(S)`` for the per-frequency products; ``c`` is
      ``model.fft_per_point``, or ``model.c_fft_per_point`` when ``nonzero_taps`` is given (the
      C library's transforms apply);
    * sparse direct (only when ``nonzero_taps``, the mean non-zero taps per channel, is given:
      :func:`mmdcls.ops.conv.select_algo` passes it where ``'sparse_direct'`` applies):
      ``a * t * O / prod(S)`` with ``O = prod(S_out)`` (last axis rounded up to 8), ``t`` the
      non-zero taps (inference) or twice them plus all taps (training), ``a`` from
      ``model.sparse_direct_per_tap``, plus ``model.sparse_direct_channels_last`` for
      ``channels_last_input``.

    The cheaper wins; direct runs channels-last for 2-D / 3-D (oneDNN's fast depthwise path),
    NCHW for 1-D.
    """
    ndim = len(kernel_shape) - 2
    direct_name = 'direct' if ndim == 1 else 'channels_last'
    if device_type != 'cpu':
        return 'direct'
    taps = math.prod(kernel_shape[2:])
    if taps <= model.small_kernel_taps:
        return direct_name
    n, c_in = input_shape[:2]
    if n == 0 or math.prod(input_shape[2:]) == 0:
        return direct_name  # nothing to compute (and the model divides by both)
    c_out, c_in_g = kernel_shape[:2]
    spatial, ksize = input_shape[2:], kernel_shape[2:]
    out = [(s + 2 * p - k) // st + 1 for s, p, k, st in zip(spatial, padding, ksize, stride)]
    points = math.prod(fft_lengths(spatial, ksize, padding))
    size = math.prod(spatial)
    direct = taps * c_in_g * math.prod(out) / size
    transforms = c_in / c_out + 1 + (0 if kernel_spectrum_cached else c_in_g / n)
    per_point = model.fft_per_point if nonzero_taps is None else model.c_fft_per_point
    fft = (
        per_point[bool(needs_grad)] * points * math.log2(max(points, 2)) / size * transforms +
        2 * c_in_g * points / size)
    costs = {'fft': fft, direct_name: direct}
    if nonzero_taps is not None:
        padded_out = math.prod(out[:-1]) * -(-out[-1] // 8) * 8
        tap_passes = 2 * nonzero_taps + taps if needs_grad else nonzero_taps
        costs['sparse_direct'] = (
            model.sparse_direct_per_tap[bool(needs_grad)] * tap_passes * padded_out / size +
            (model.sparse_direct_channels_last if channels_last_input else 0))
    return min(costs, key=costs.get)
