"""FLOPs and parameters of an mmdet / mmseg model (or its backbone), DCLS layers included.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--backbone-only] [--table]
        [--cfg-options k=v ...]

Counting follows mmengine.analysis (fvcore): one fused multiply-add = 1 FLOP, traced with
``torch.jit``. A DCLS layer is counted as what it runs:

* the dense convolution with its constructed ``out x in/groups x dilated_kernel_size`` kernel
  (traced as ``aten::_convolution``: during analysis the DCLS layers use the ``'direct'``
  algorithm, ``MMDCLS_CONV_ALGO=direct``, so that the convolution is one countable op instead
  of FFTs the counter does not know);
* plus the kernel construction, an opaque autograd Function for the tracer (a trace always
  takes the torch construction of ``mmdcls/ops/construct/``), counted by the handles
  registered here: bilinear ``v0`` / ``v1`` (``_ConstructBilinear``) 2**ndim taps per element,
  ``out * in/groups * kernel_count * 2**ndim``; ``gauss`` / ``max`` (``_ConstructKernel``)
  the per-axis profiles over the whole dilated size ``s`` and their outer-product
  contraction, ``out * in/groups * kernel_count * (sum(s) + prod(s))``.

Construction does not depend on the batch or image size, so its share shrinks with the input.

The config (with ``--cfg-options`` merged in) is checked before the model is built: its
toolkit, and the backbone's arguments (:mod:`mmdcls.utils.config_checks`).

Exit status: 0 after printing the counts, 2 for bad arguments (a bad ``--shape``, a config that
is missing or fails the checks: one line naming what to fix), 1 on any other error.
"""
import argparse
import math
import os
import sys
from collections import Counter
from typing import List

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from mmdcls.utils.config_checks import check_config  # noqa: E402
from mmdcls.utils.tool_errors import SETUP_ERRORS, report_tool_error  # noqa: E402
from mmdcls.utils.tool_setup import load_tool_config, select_toolkit  # noqa: E402

import mmdcls  # noqa: F401  isort:skip

CONSTRUCT_BILINEAR = 'prim::PythonOp._ConstructBilinear'
CONSTRUCT_KERNEL = 'prim::PythonOp._ConstructKernel'


def _shape(value) -> List[int]:
    t = value.type()
    sizes = t.sizes() if hasattr(t, 'sizes') else None
    if sizes is None:
        raise ValueError('get_flops: a DCLS construction input has no static shape in the trace')
    return list(sizes)


def construct_bilinear_flop_jit(inputs, outputs) -> Counter:
    """``_ConstructBilinear(weight (R, K), P (ndim, R, K), sizes, version)`` -> (R, *sizes)."""
    rows, kernel_count = _shape(inputs[0])
    ndim = len(_shape(outputs[0])) - 1
    return Counter({'dcls_construct': rows * kernel_count * 2**ndim})


def construct_kernel_flop_jit(inputs, outputs) -> Counter:
    """``_ConstructKernel(weight (R, K), P, SIG, sizes, version)`` -> (R, *sizes): per element,
    a profile over each axis's whole size and one term of the outer-product contraction per
    kernel entry."""
    rows, kernel_count = _shape(inputs[0])
    sizes = _shape(outputs[0])[1:]
    return Counter({'dcls_construct': rows * kernel_count * (sum(sizes) + math.prod(sizes))})


DCLS_HANDLES = {
    CONSTRUCT_BILINEAR: construct_bilinear_flop_jit,
    CONSTRUCT_KERNEL: construct_kernel_flop_jit,
}


class _TensorForward(torch.nn.Module):
    """model(inputs) -> tensors, for tracing a detector / segmentor without data samples."""

    def __init__(self, model, scope, shape):
        super().__init__()
        self.model = model
        self.samples = None
        if scope == 'mmdet':
            from mmdet.structures import DetDataSample
            h, w = shape
            self.samples = [
                DetDataSample(
                    metainfo=dict(
                        img_shape=(h, w),
                        ori_shape=(h, w),
                        pad_shape=(h, w),
                        batch_input_shape=(h, w),
                        scale_factor=(1., 1.)))
            ]

    def forward(self, x):
        out = self.model._forward(x, self.samples)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def analyze(model: torch.nn.Module, inputs, show_table: bool = False) -> dict:
    """FLOPs (total and ``dcls_construct`` part) and parameters of ``model(*inputs)``.

    Returns:
        dict: ``flops``, ``dcls_construct_flops``, ``params``, ``table`` (str or None),
        ``unsupported`` (op name -> count, ops the counter skipped).
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.analysis.print_helper import complexity_stats_table
    previous = os.environ.get('MMDCLS_CONV_ALGO')
    os.environ['MMDCLS_CONV_ALGO'] = 'direct'
    try:
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.set_op_handle(**DCLS_HANDLES)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = analyzer.by_operator()
        total = analyzer.total()
        table = complexity_stats_table(analyzer, max_depth=3) if show_table else None
        unsupported = dict(analyzer.unsupported_ops())
    finally:
        if previous is None:
            os.environ.pop('MMDCLS_CONV_ALGO', None)
        else:
            os.environ['MMDCLS_CONV_ALGO'] = previous
    return dict(
        flops=total,
        dcls_construct_flops=by_op.get('dcls_construct', 0),
        params=parameter_count(model)[''],
        table=table,
        unsupported=unsupported)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='FLOPs / params of a model (DCLS counted)')
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1280, 800],
        help='input H [W] (default 1280 800 as mmdet; ADE20K configs: 512)')
    parser.add_argument('--backbone-only', action='store_true', help='count the backbone only')
    parser.add_argument('--table', action='store_true', help='print the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Prints the counts; returns the exit status (0, or 2 for bad arguments)."""
    args = parse_args(argv)
    if len(args.shape) == 1:
        shape = (args.shape[0], args.shape[0])
    elif len(args.shape) == 2:
        shape = tuple(args.shape)
    else:
        return report_tool_error('tools/analysis/get_flops.py',
                                 f'--shape takes H or H W, got {args.shape}')
    try:
        cfg = load_tool_config(args.config, cfg_options=args.cfg_options)
        scope = select_toolkit(cfg)
        # No pretrained weights needed to count: drop init_cfg so no file is read.
        cfg.model.get('backbone', {}).pop('init_cfg', None)
        check_config(cfg, phases=())  # the model only: no dataset is read
    except SETUP_ERRORS as err:
        return report_tool_error('tools/analysis/get_flops.py', err)
    from mmengine.registry import MODELS

    model = MODELS.build(cfg.model).eval()
    x = torch.zeros(1, 3, *shape)
    target = model.backbone if args.backbone_only else _TensorForward(model, scope, shape)
    with torch.no_grad():
        result = analyze(target, (x, ), show_table=args.table)
    if result['table']:
        print(result['table'])
    split = '=' * 40
    print(f'{split}\nInput shape: (3, {shape[0]}, {shape[1]})'
          f'{" (backbone only)" if args.backbone_only else ""}\n'
          f'Flops: {result["flops"] / 1e9:.3f} GFLOPs '
          f'(of which DCLS kernel construction {result["dcls_construct_flops"] / 1e6:.3f} M)\n'
          f'Params: {result["params"] / 1e6:.3f} M\n{split}')
    if result['unsupported']:
        print('Ops not counted (mostly cheap element-wise / indexing): ' +
              ', '.join(f'{k} x{v}' for k, v in sorted(result['unsupported'].items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
