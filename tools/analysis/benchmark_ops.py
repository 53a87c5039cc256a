"""Benchmark DCLS kernel construction: official ``dcls`` 0.1.1 vs mmdcls, side by side.

Runs both implementations in one process on the four ConvNeXt-T stage shapes (512x512 input,
batch 2: 96x128x128, 192x64x64, 384x32x32, 768x16x16), forward + backward, and prints a table:

    stage, version, official construction ms, mmdcls construction ms, speed-up,
    mmdcls construction share of the whole DCLS layer (construction + convolution),
    peak extra memory of mmdcls construction (the forward pass that builds the kernel, autograd
    on) beyond the kernel itself, in kernel sizes.

Targets (exit status 1 if one is missed): speed-up >= 20x for every version, peak extra memory
<= 2x the kernel. The share is printed, not checked: it rises as the convolution it is measured
against gets faster, for an unchanged construction; what counts is the whole layer
(benchmark_backbone.py).

    python tools/analysis/benchmark_ops.py [--threads 2] [--repeats 9] [--positions spread|init]
"""
import argparse
import statistics
import sys

import torch

from mmdcls.ops import Dcls2d, construct_kernel
from mmdcls.utils.profiling import peak_cpu_bytes, spread_positions, timed_rounds

# (channels, feature-map side) of ConvNeXt-T stages for a 512x512 input.
STAGES = [(96, 128), (192, 64), (384, 32), (768, 16)]
# (version, dilated_kernel_size, kernel_count): the release's v0 and Gaussian settings, and the
# v0 setting for the other interpolations.
SETTINGS = [('v0', 17, 34), ('v1', 17, 34), ('max', 17, 34), ('gauss', 23, 26)]
TARGET_SPEEDUP = 20.0
TARGET_MEMORY = 2.0


def timed(*fns, repeats):
    """Median wall time (ms) of each of ``fns`` after one warm-up call each, timed in rounds
    (:func:`mmdcls.utils.profiling.timed_rounds`: every function once per round, the order
    reversed every other round) so that load from elsewhere and the state the previous call
    leaves (caches, allocator, idle threads) hit them alike."""
    times, _ = timed_rounds(dict(enumerate(fns)), repeats)
    return [statistics.median(times[i]) for i in range(len(fns))]


def make_official(channels, size, count, version):
    from DCLS.construct.modules import ConstructKernel2d
    return ConstructKernel2d(channels, channels, channels, count, (size, size), version)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument(
        '--stages',
        type=int,
        nargs='+',
        default=[0, 1, 2, 3],
        help='ConvNeXt-T stage indices to run')
    parser.add_argument(
        '--versions', nargs='+', default=[s[0] for s in SETTINGS], choices=[s[0] for s in SETTINGS])
    parser.add_argument(
        '--positions',
        choices=['spread', 'init'],
        default='spread',
        help='DCLS positions: spread uniformly over the kernel as in trained '
        'checkpoints (default), or as initialised (clustered)')
    parser.add_argument('--no-check', action='store_true', help='print only, exit 0')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    header = (f'{"stage":>5} {"shape":>14} {"version":>7} {"kernel":>6} {"official ms":>11} '
              f'{"mmdcls ms":>9} {"speed-up":>8} {"layer ms":>8} {"share":>6} {"memory":>6}')
    print(f'torch {torch.__version__}, {args.threads} threads, batch 2, forward + backward, '
          f'DCLS positions: {args.positions}')
    print(header)
    print('-' * len(header))
    failures = []
    for stage in args.stages:
        channels, side = STAGES[stage]
        for version, size, count in SETTINGS:
            if version not in args.versions:
                continue
            layer = Dcls2d(
                channels,
                channels,
                count,
                padding=size // 2,
                dilated_kernel_size=size,
                groups=channels,
                version=version)
            if args.positions == 'spread':
                spread_positions(layer)
            weight, P, SIG = layer.weight, layer.P, layer.SIG
            grad_kernel = torch.randn(channels, 1, size, size)

            def ours():
                kernel = construct_kernel(weight, P, SIG, (size, size), version)
                kernel.backward(grad_kernel)

            official_module = make_official(channels, size, count, version)

            def official():
                kernel = official_module(weight, P, SIG)
                kernel.backward(grad_kernel)

            x = torch.randn(2, channels, side, side, requires_grad=True)
            grad_out = torch.randn(2, channels, side, side)

            def whole_layer():
                layer(x).backward(grad_out)

            official_ms, = timed(official, repeats=max(1, args.repeats // 2))
            ours_ms, layer_ms = timed(ours, whole_layer, repeats=args.repeats)
            kernel_bytes = channels * size * size * 4
            # forward construction with autograd on, as in training; the kernel itself excluded
            memory = peak_cpu_bytes(
                lambda: construct_kernel(weight, P, SIG, (size, size), version)) / kernel_bytes - 1

            speedup = official_ms / ours_ms
            share = ours_ms / layer_ms
            print(
                f'{stage + 1:>5} {f"{channels}x{side}x{side}":>14} {version:>7} '
                f'{f"{size}/{count}":>6} {official_ms:>11.1f} {ours_ms:>9.2f} '
                f'{speedup:>7.1f}x {layer_ms:>8.1f} {share:>6.1%} {memory:>5.2f}x',
                flush=True)
            if speedup < TARGET_SPEEDUP:
                failures.append(f'stage {stage + 1} {version}: speed-up {speedup:.1f}x < '
                                f'{TARGET_SPEEDUP}x')
            if memory > TARGET_MEMORY:
                failures.append(f'stage {stage + 1} {version}: peak extra memory {memory:.2f}x '
                                f'the kernel > {TARGET_MEMORY}x')
    print('"kernel" = dilated size / kernel_count; "share" = mmdcls construction / whole mmdcls '
          'layer (construction + convolution); "memory" = peak memory of construction beyond '
          'the kernel it returns, in kernel sizes.')
    if failures:
        print('\nTargets missed:\n  ' + '\n  '.join(failures))
        return 0 if args.no_check else 1
    print('\nAll targets met: speed-up >= 20x, peak extra memory <= 2x the kernel (the share is '
          'printed only).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
