"""Benchmark ConvNeXt-DCLS-T against the same backbone with 7x7 depthwise convs, side by side.

Builds ``mmdcls.ConvNeXtDCLS(arch='tiny')`` as

* ``7x7``: ``dwconv_cfg=dict(type='Conv2d', kernel_size=7)``: plain ConvNeXt-T, the baseline;
* ``7x7-cl``: the same with ``mmdcls.ops.LargeKernelConv2d`` (channels-last 7x7), for
  information only (a faster baseline than torch's default NCHW path);
* ``v0``: DCLS v0, dilated_kernel_size 17, kernel_count 34 (the release), positions spread over
  the kernel as in trained checkpoints (``--positions init`` keeps the clustered
  initialisation);
* ``gauss``: DCLS gauss, dilated_kernel_size 23, kernel_count 26 (the release's Gaussian);
* ``v0-folded`` / ``gauss-folded``: ``mmdcls.deploy.fold_dcls`` of the above (plain
  ``nn.Conv2d``), and ``-folded-lk`` with ``large_kernel=True`` (``LargeKernelConv2d``, exported
  as plain Conv), for inference only; ``v0`` / ``gauss`` themselves are timed in inference
  too, unfolded (as ``tools/test.py`` runs them: each layer reuses its kernel while the
  parameters are unchanged, see ``mmdcls/ops/kernel_cache.py``),

and times, per input shape (1x3x384x384, 2x3x512x512), a train step (forward + backward of the
mean of all stage outputs, model in train mode) and inference (eval, ``torch.inference_mode``).
Models are timed in rounds (every model once per round, the order reversed every other round,
after one warm-up call each, :func:`mmdcls.utils.profiling.timed_rounds`); the table gives each
model's median ms and its ratio to the 7x7 baseline as the median over rounds of the two calls'
ratio in that round (:func:`~mmdcls.utils.profiling.paired_ratio`: the machine's drift between
rounds cancels out). Peak memory is the peak of the bytes allocated during one extra call
(profiler memory events).

Targets (exit status 1 if missed unless ``--no-check``): train step of ``v0`` and ``gauss`` at
most 1.2x the 7x7 baseline; inference of the folded models at most 1.1x (the faster of the two
folded forms counts); unfolded inference at most 1.05x.

    python tools/analysis/benchmark_backbone.py [--threads 2] [--repeats 9]
        [--shapes 1x384 2x512] [--positions spread|init] [--no-check]
"""
import argparse
import os
import statistics
import sys

import torch

from mmdcls.utils.profiling import (CONVNEXT_DCLS_VARIANTS, paired_ratio, peak_cpu_bytes,
                                    spread_positions, timed_rounds)

TARGET_TRAIN = 1.2
TARGET_INFER = 1.1
TARGET_UNFOLDED = 1.05


def build_models(variants, positions='spread'):
    from mmdcls.deploy import fold_dcls
    from mmdcls.models import ConvNeXtDCLS
    from mmdcls.ops import LargeKernelConv2d

    torch.manual_seed(0)
    train = {
        '7x7':
        ConvNeXtDCLS(arch='tiny', dwconv_cfg=dict(type='Conv2d', kernel_size=7)),
        '7x7-cl':
        ConvNeXtDCLS(
            arch='tiny',
            dwconv_cfg=dict(type=LargeKernelConv2d, kernel_size=7, conv_algo='channels_last'))
    }
    infer = dict(train)
    for name in variants:
        model = ConvNeXtDCLS(arch='tiny', **CONVNEXT_DCLS_VARIANTS[name])
        if positions == 'spread':
            spread_positions(model)
        train[name] = model
        infer[name] = model  # unfolded: inference() puts it in eval mode
        infer[f'{name}-folded'] = fold_dcls(model).eval()
        infer[f'{name}-folded-lk'] = fold_dcls(model, large_kernel=True).eval()
    return train, infer


def train_step(model, x):

    def fn():
        model.train()
        outs = model(x)
        sum(o.mean() for o in outs).backward()
        for p in model.parameters():
            p.grad = None

    return fn


def inference(model, x):

    def fn():
        model.eval()
        with torch.inference_mode():
            model(x)

    return fn


def parse_shape(text):
    try:
        batch, side = (int(v) for v in text.split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'shape must be BATCHxSIDE like 2x512, got {text!r}')
    return batch, side


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=9, help='timed rounds')
    parser.add_argument(
        '--shapes',
        type=parse_shape,
        nargs='+',
        default=[(1, 384), (2, 512)],
        help='BATCHxSIDE, e.g. 1x384 2x512')
    parser.add_argument(
        '--variants',
        nargs='+',
        default=list(CONVNEXT_DCLS_VARIANTS),
        choices=list(CONVNEXT_DCLS_VARIANTS))
    parser.add_argument(
        '--modes', nargs='+', default=['train', 'infer'], choices=['train', 'infer'])
    parser.add_argument(
        '--positions',
        choices=['spread', 'init'],
        default='spread',
        help='DCLS positions: spread uniformly over the kernel as in trained '
        'checkpoints (default), or as initialised (clustered)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory calls')
    parser.add_argument('--no-check', action='store_true', help='print only, exit 0')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_models, infer_models = build_models(args.variants, args.positions)
    print(f'torch {torch.__version__}, {args.threads} threads, {args.repeats} rounds (median), '
          f'MMDCLS_CONV_ALGO={os.environ.get("MMDCLS_CONV_ALGO", "auto")}, '
          f'DCLS positions: {args.positions}')
    header = f'{"mode":>5} {"input":>11} {"model":>15} {"ms":>9} {"ratio":>6} {"peak MiB":>8}'
    print(header)
    print('-' * len(header))
    failures = []
    for batch, side in args.shapes:
        x = torch.randn(batch, 3, side, side)
        for mode in args.modes:
            models, make = ((train_models, train_step) if mode == 'train' else
                            (infer_models, inference))
            fns = {name: make(model, x) for name, model in models.items()}
            times, _ = timed_rounds(fns, args.repeats)
            ratios = {name: paired_ratio(times, name, '7x7') for name in times}
            for name, ms in times.items():
                mem = '' if args.no_memory else f'{peak_cpu_bytes(fns[name]) / 2**20:>8.0f}'
                print(
                    f'{mode:>5} {f"{batch}x3x{side}x{side}":>11} {name:>15} '
                    f'{statistics.median(ms):>9.1f} {ratios[name]:>5.2f}x {mem}',
                    flush=True)
            for variant in args.variants:
                if mode == 'train':
                    checks = [(variant, ratios[variant], TARGET_TRAIN)]
                else:
                    folded = min(ratios[f'{variant}-folded'], ratios[f'{variant}-folded-lk'])
                    checks = [(f'{variant}-folded', folded, TARGET_INFER),
                              (f'{variant} unfolded', ratios[variant], TARGET_UNFOLDED)]
                for name, ratio, target in checks:
                    if ratio > target:
                        failures.append(f'{mode} {batch}x{side} {name}: {ratio:.2f}x > '
                                        f'{target}x')
    print('ms = median over rounds; ratio = median over rounds of time / time of the 7x7 baseline '
          '(plain nn.Conv2d depthwise 7x7) in the same round; peak MiB = peak bytes allocated '
          'during one call.')
    if failures:
        print('\nTargets missed:\n  ' + '\n  '.join(failures))
        return 0 if args.no_check else 1
    print(f'\nAll targets met: train <= {TARGET_TRAIN}x, folded inference <= {TARGET_INFER}x, '
          f'unfolded inference <= {TARGET_UNFOLDED}x.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
