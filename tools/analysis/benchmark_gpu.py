"""Benchmark ConvNeXt-DCLS-T on a CUDA GPU against its 7x7 twin and the release op, side by side.

Builds ``mmdcls.ConvNeXtDCLS(arch='tiny')`` as

* ``7x7``: ``dwconv_cfg=dict(type='Conv2d', kernel_size=7)``: plain ConvNeXt-T, the baseline;
* ``v0`` / ``gauss``: DCLS v0 (17x17, 34 positions) and gauss (23x23, 26 positions),
  :data:`mmdcls.utils.profiling.CONVNEXT_DCLS_VARIANTS`, positions spread over the kernel as in
  trained checkpoints (:func:`~mmdcls.utils.profiling.spread_positions`);
* ``release-v0`` / ``release-gauss``: the same networks, same parameters, with the official
  ``dcls`` 0.1.1 ``Dcls2d`` (``use_implicit_gemm=False``) as depthwise layer,

and times, per row (mode / dtype / input [/ compiled]):

* ``train``: forward + backward of the sum of the mean of every stage output (train mode);
* ``infer``: forward in eval mode under ``torch.inference_mode`` (unfolded: each DCLS layer
  reuses its kernel while the parameters are unchanged);
* ``fp32``, or ``bf16`` autocast around the forward; inputs 64x3x224x224 and 2x3x800x800;
* ``compiled``: the same with ``torch.compile``'d models (the 7x7 twin, v0 and gauss only):
  the rows the compiled target needs (64x224: infer bf16, train bf16, infer fp32), after the
  eager ones; each model's first call compiles (its time, graphs and graph breaks are shown).

Models run in rounds (each once per round, the order reversed every other round, after
``--warmup`` untimed calls, :func:`mmdcls.utils.profiling.timed_rounds`; the device is
synchronised before and after every call, so each time is the call's whole latency). The
convolution algorithm of a DCLS layer is chosen on its first call (``auto`` times the
candidates once per problem on CUDA), so the warm-ups come first; ``--algo`` forces one
(``MMDCLS_CONV_ALGO``). cuDNN's autotuner (``torch.backends.cudnn.benchmark``) is on unless
``--no-cudnn-benchmark``. The table gives per model the
median ms, img/s, the ratio to the 7x7 twin (the median over rounds of the two calls' ratio in
that round, :func:`~mmdcls.utils.profiling.paired_ratio`), the same against the release op, and
for the eager train rows the peak memory of one extra step
(:func:`~mmdcls.utils.profiling.peak_cuda_bytes`) and its ratio to the twin's.

Targets (ratios to the twin in the same run; exit status 1 if one is missed unless
``--no-check``): v0 and gauss train and inference at most 1.10x in every row (compiled rows:
of the compiled twin); train-step peak memory at most 1.05x; faster than the release op in
every row where it runs (the eager rows).

    python tools/analysis/benchmark_gpu.py [--rows PATTERN ...] [--quick] [--json OUT]
    python tools/analysis/benchmark_gpu.py --smoke --device cpu   # the script, end to end

The defaults are sized to finish within 5 minutes on one H200: compiling takes a large part,
and no row starts after ``--time-limit`` seconds (240; the rows left out are named and count as
missed). ``--quick`` or ``--rows`` for less. The JSON report is rewritten after every row.
"""
import argparse
import contextlib
import fnmatch
import importlib.metadata
import inspect
import json
import logging
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from typing import NamedTuple, Optional, Tuple

import torch

from mmdcls.utils.profiling import (CONVNEXT_DCLS_VARIANTS, paired_ratio, peak_cpu_bytes,
                                    peak_cuda_bytes, spread_positions, timed_rounds)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TARGET_RATIO = 1.10  # train / inference time of v0 and gauss against the 7x7 twin
TARGET_MEMORY = 1.05  # peak memory of the train step against the twin's
TARGET_VS_RELEASE = 1.0  # time against the release op: strictly less
TWIN = '7x7'
VARIANTS = tuple(CONVNEXT_DCLS_VARIANTS)
RELEASE = {variant: f'release-{variant}' for variant in VARIANTS}
COMPILED_MODELS = (TWIN, ) + VARIANTS
SHAPES = {'64x224': (64, 224), '2x800': (2, 800)}
SMOKE_SHAPE = '1x64'
#: the network of --smoke: ConvNeXt-T's layout, one block per stage, an eighth of the channels
SMOKE_ARCH = dict(depths=[1, 1, 1, 1], channels=[12, 24, 48, 96], kernel_count=34)
DTYPES = {'fp32': None, 'bf16': torch.bfloat16}
MODES = ('train', 'infer')
#: (mode, dtype, shape) of the rows also timed compiled: what the compiled target needs, the
#: most telling first (the rows run in this order after the eager ones)
COMPILED_ROWS = (
    ('infer', 'bf16', '64x224'),
    ('train', 'bf16', '64x224'),
    ('infer', 'fp32', '64x224'),
)
#: dynamo's limit of compiled variants per function during the run (:func:`recompile_limit`)
COMPILE_VARIANTS_LIMIT = 64
QUICK_ROWS = ('train/bf16/64x224', 'infer/bf16/64x224', 'infer/bf16/64x224/compiled')
QUICK_ROUNDS, QUICK_WARMUP = 3, 2
TIME_LIMIT = 240  # s: no row starts later (the run stays within 5 minutes on one H200)
NO_CUDA = ('benchmark_gpu.py needs a CUDA device (torch.cuda.is_available() is False); '
           '--smoke --device cpu checks the script on the CPU')


class Row(NamedTuple):
    mode: str
    dtype: str
    shape: str  # BATCHxSIDE
    compiled: bool

    @property
    def name(self) -> str:
        return '/'.join((self.mode, self.dtype, self.shape) +
                        (('compiled', ) if self.compiled else ()))

    @property
    def batch_side(self) -> Tuple[int, int]:
        batch, side = self.shape.split('x')
        return int(batch), int(side)


def all_rows(smoke: bool):
    """Every row, in run order: the eager rows per input, dtype and mode, then the compiled
    ones. ``smoke``: the same rows on one tiny input (:data:`SMOKE_SHAPE`)."""
    shapes = [SMOKE_SHAPE] if smoke else list(SHAPES)
    rows = [
        Row(mode, dtype, shape, False) for shape in shapes for dtype in DTYPES for mode in MODES
    ]
    rows += [
        Row(mode, dtype, SMOKE_SHAPE if smoke else shape, True)
        for mode, dtype, shape in COMPILED_ROWS
    ]
    return rows


def select_rows(patterns, smoke: bool):
    """The rows whose names match one of the shell-style ``patterns`` (all if None), in run
    order; a pattern matching no row is an error naming the rows."""
    rows = all_rows(smoke)
    if not patterns:
        return rows
    names = [row.name for row in rows]
    unmatched = [p for p in patterns if not fnmatch.filter(names, p)]
    if unmatched:
        raise ValueError(f'--rows {unmatched} match no row; the rows are: {", ".join(names)}')
    return [row for row in rows if any(fnmatch.fnmatchcase(row.name, p) for p in patterns)]


# ---------------------------------------------------------------------------- models
def build_models(device: torch.device, arch='tiny'):
    """``({name: model on device}, why the release models are missing or None)``."""
    from mmdcls.models import ConvNeXtDCLS

    torch.manual_seed(0)
    models = {TWIN: ConvNeXtDCLS(arch=arch, dwconv_cfg=dict(type='Conv2d', kernel_size=7))}
    for name, kwargs in CONVNEXT_DCLS_VARIANTS.items():
        models[name] = ConvNeXtDCLS(arch=arch, **kwargs)
        spread_positions(models[name])
    try:
        from DCLS.construct.modules import Dcls2d as ReleaseDcls2d
    except ImportError as e:
        missing = f'the release op (dcls 0.1.1) is not installed ({e}): not compared'
    else:
        missing = None
        for name in VARIANTS:
            models[RELEASE[name]] = build_release(models[name], ReleaseDcls2d, arch)
    return {name: model.to(device) for name, model in models.items()}, missing


def build_release(model, release_cls, arch):
    """The network of ``model`` (a ConvNeXtDCLS of ``arch``) with ``release_cls`` (dcls 0.1.1's
    ``Dcls2d``) as depthwise layer, holding ``model``'s parameters."""
    from mmdcls.models import ConvNeXtDCLS

    size = model.dilated_kernel_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    cfg = dict(
        type=release_cls,
        kernel_count=model.kernel_count,
        dilated_kernel_size=size,
        padding=tuple(s // 2 for s in size),
        version=model.version)
    if 'use_implicit_gemm' in inspect.signature(release_cls).parameters:
        cfg['use_implicit_gemm'] = False  # its CUDA extension is a separate, optional build
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)  # dcls logs, per layer, that it runs F.conv2d
    try:
        release = ConvNeXtDCLS(arch=arch, dwconv_cfg=cfg)
    finally:
        logging.disable(disabled)
    release.load_state_dict(model.state_dict())
    return release


def autocast_context(device: torch.device, dtype: str):
    """A fresh context manager per call: autocast to ``DTYPES[dtype]``, or nothing."""
    if DTYPES[dtype] is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=DTYPES[dtype])


def train_step(model, x, autocast):

    def step():
        model.train()
        with autocast():
            outs = model(x)
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        for p in model.parameters():
            p.grad = None

    return step


def inference(model, x, autocast):

    def forward():
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)

    return forward


def synchronized(fn, device: torch.device):
    """``fn`` with the device synchronised before and after it (CUDA), so that a timer around
    the call sees all of its work and none of an earlier call's."""
    if device.type != 'cuda':
        return fn

    def call():
        torch.cuda.synchronize(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result

    return call


def peak_bytes(fn, device: torch.device) -> int:
    return peak_cuda_bytes(fn, device) if device.type == 'cuda' else peak_cpu_bytes(fn)


def dynamo_counts() -> Tuple[int, int]:
    """``(graphs compiled, graph breaks)`` so far in this process (dynamo's counters)."""
    from torch._dynamo.utils import counters
    return counters['stats']['unique_graphs'], sum(counters['graph_break'].values())


@contextlib.contextmanager
def recompile_limit(limit: int):
    """Dynamo's limit of compiled variants per Python function raised to ``limit`` inside.
    The compiled models share their classes' code (every block's forward, every norm's): three
    models in two modes and two dtypes pass the default of 8, and past it dynamo runs the
    function uncompiled."""
    import torch._dynamo.config as config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
    previous = getattr(config, name)
    setattr(config, name, max(limit, previous))
    try:
        yield
    finally:
        setattr(config, name, previous)


# ---------------------------------------------------------------------------- one row
def measure_row(row: Row, models, compiled, device, rounds: int, warmup: int) -> dict:
    """Times the models of ``row``; returns its entry of the JSON report."""
    start = time.perf_counter()
    batch, side = row.batch_side
    x = torch.randn(batch, 3, side, side, device=device)
    make = train_step if row.mode == 'train' else inference
    autocast = autocast_context(device, row.dtype)
    source = compiled if row.compiled else models
    fns = {name: synchronized(make(model, x, autocast), device) for name, model in source.items()}
    first_call = {}
    for name, fn in fns.items() if row.compiled else ():
        # the first call compiles; its graph breaks show what dynamo could not trace
        counts, call_start = dynamo_counts(), time.perf_counter()
        fn()
        first_call[name] = (time.perf_counter() - call_start,
                            *(b - a for a, b in zip(counts, dynamo_counts())))
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    graphs_before = dynamo_counts()[0]
    times, _ = timed_rounds(fns, rounds, warmup=0)
    # graphs compiled during the timed rounds: their times include compiling
    late_graphs = dynamo_counts()[0] - graphs_before
    results = {}
    for name, ms in times.items():
        median = statistics.median(ms)
        release = RELEASE.get(name)
        results[name] = dict(
            ms=median,
            img_per_s=batch / median * 1e3,
            ratio=paired_ratio(times, name, TWIN),
            vs_release=paired_ratio(times, name, release) if release in times else None,
            rounds_ms=ms)
        if name in first_call:
            results[name].update(
                compile_s=first_call[name][0],
                graphs=first_call[name][1],
                graph_breaks=first_call[name][2])
    if row.mode == 'train' and not row.compiled:
        # after the timed rounds: no first-call algorithm timing in the peak
        peaks = {name: peak_bytes(fn, device) for name, fn in fns.items()}
        for name, peak in peaks.items():
            results[name].update(peak_mib=peak / 2**20, peak_ratio=peak / max(peaks[TWIN], 1))
    return dict(
        row=row.name,
        mode=row.mode,
        dtype=row.dtype,
        input=[batch, 3, side, side],
        compiled=row.compiled,
        late_graphs=late_graphs,
        seconds=time.perf_counter() - start,
        models=results)


def check_row(result: dict):
    """The targets ``result`` (one row of :func:`measure_row`) misses, as lines."""
    failures = []
    for variant in VARIANTS:
        figures = result['models'].get(variant)
        if figures is None:
            continue
        where = f'{result["row"]} {variant}'
        if figures['ratio'] > TARGET_RATIO:
            failures.append(f'{where}: {figures["ratio"]:.2f}x the 7x7 twin > {TARGET_RATIO}x')
        if figures.get('peak_ratio') is not None and figures['peak_ratio'] > TARGET_MEMORY:
            failures.append(f'{where}: peak memory {figures["peak_ratio"]:.2f}x the twin\'s > '
                            f'{TARGET_MEMORY}x')
        if figures['vs_release'] is not None and figures['vs_release'] >= TARGET_VS_RELEASE:
            failures.append(f'{where}: {figures["vs_release"]:.2f}x the release op (not faster)')
    return failures


# ---------------------------------------------------------------------------- report
HEADER = (f'{"row":<26} {"model":<13} {"ms":>9} {"img/s":>8} {"vs 7x7":>7} {"vs release":>10} '
          f'{"peak MiB":>9} {"peak vs 7x7":>11}')


def format_model_line(row_name: str, name: str, figures: dict) -> str:

    def times(value):
        return '' if value is None else f'{value:.2f}x'

    peak = figures.get('peak_mib')
    line = (f'{row_name:<26} {name:<13} {figures["ms"]:>9.2f} {figures["img_per_s"]:>8.1f} '
            f'{times(figures["ratio"]):>7} {times(figures["vs_release"]):>10} '
            f'{"" if peak is None else f"{peak:.0f}":>9} '
            f'{times(figures.get("peak_ratio")):>11}')
    if 'compile_s' in figures:
        line += (f'  (first call {figures["compile_s"]:.1f} s: {figures["graphs"]} graphs, '
                 f'{figures["graph_breaks"]} graph breaks)')
    return line


def _git_commit() -> str:
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                                cwd=REPO,
                                capture_output=True,
                                text=True,
                                timeout=10,
                                check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=REPO,
                               capture_output=True,
                               text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown (not a git checkout)'
    return commit + (' with uncommitted changes' if dirty else '')


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def environment(device: torch.device) -> dict:
    import mmdcls
    from mmdcls.ops.conv import ENV_VAR
    cuda = device.type == 'cuda'
    try:
        conv_tf32 = torch.backends.cudnn.allow_tf32
    except RuntimeError as e:  # torch refuses the legacy flag after the new API was used
        conv_tf32 = f'unknown ({e})'
    return {
        'torch':
        torch.__version__,
        'cuda':
        torch.version.cuda,
        'cudnn':
        torch.backends.cudnn.version() if cuda else None,
        'triton':
        _distribution_version('triton'),
        'device':
        torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        'mmdcls':
        mmdcls.__version__,
        'mmdcls commit':
        _git_commit(),
        'dcls':
        _distribution_version('dcls'),
        ENV_VAR:
        os.environ.get(ENV_VAR) or 'auto',
        'cudnn.benchmark':
        torch.backends.cudnn.benchmark,
        'cudnn.allow_tf32':
        conv_tf32,
        'float32 matmul precision':
        torch.get_float32_matmul_precision(),
    }


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    from mmdcls.ops.conv import ENV_VAR, algo_choices
    row_names = ', '.join(row.name for row in all_rows(smoke=False))
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f'rows: {row_names}')
    parser.add_argument(
        '--rows',
        nargs='+',
        metavar='PATTERN',
        help="run only the rows whose names match one of these shell patterns, e.g. "
        "'train/*' (with the compiled train rows), '*/64x224' (eager only), "
        "'infer/bf16/*'; default: every row (see the list below)")
    parser.add_argument(
        '--quick',
        action='store_true',
        help=f'rows {", ".join(QUICK_ROWS)} (unless --rows is given), {QUICK_ROUNDS} rounds '
        f'after {QUICK_WARMUP} warm-ups (unless given): about a minute')
    parser.add_argument('--rounds', type=int, help='timed rounds per row (default 7)')
    parser.add_argument(
        '--warmup',
        type=int,
        help='untimed calls of every model before the rounds of a row (default 3); a compiled '
        "row's first call, which compiles, comes on top")
    parser.add_argument(
        '--algo',
        choices=algo_choices(),
        help=f'force the DCLS layers\' convolution algorithm (sets {ENV_VAR}; default: the '
        'variable as set, else auto)')
    parser.add_argument(
        '--compile-backend',
        help="torch.compile backend of the compiled rows (default inductor; 'eager' with "
        '--smoke)')
    parser.add_argument(
        '--no-cudnn-benchmark',
        action='store_true',
        help='leave torch.backends.cudnn.benchmark off (default: on on CUDA)')
    parser.add_argument(
        '--time-limit',
        type=float,
        default=TIME_LIMIT,
        metavar='SECONDS',
        help=f'start no row after this many seconds (default {TIME_LIMIT}; 0: no limit); the rows '
        'left out are named and count as missed targets')
    parser.add_argument(
        '--json',
        metavar='OUT',
        help='also write every figure to this JSON file (rewritten after every row)')
    parser.add_argument('--device', default='cuda', help='torch device (default cuda)')
    parser.add_argument(
        '--smoke',
        action='store_true',
        help=f'check the script end to end: every row on a {SMOKE_SHAPE} input (BATCHxSIDE) and '
        'a narrow one-block-per-stage network (the rows are named with it, e.g. '
        f'train/fp32/{SMOKE_SHAPE}), one round, no warm-up, targets reported but not enforced; '
        'runs on the CPU (--device cpu)')
    parser.add_argument('--no-check', action='store_true', help='print only, exit 0')
    args = parser.parse_args(argv)
    if args.quick and not args.rows:
        args.rows = list(QUICK_ROWS)
    defaults = ((1, 0) if args.smoke else (QUICK_ROUNDS, QUICK_WARMUP) if args.quick else (7, 3))
    args.rounds = defaults[0] if args.rounds is None else args.rounds
    args.warmup = defaults[1] if args.warmup is None else args.warmup
    if args.compile_backend is None:
        args.compile_backend = 'eager' if args.smoke else 'inductor'
    try:
        args.rows = select_rows(args.rows, args.smoke)
    except ValueError as e:
        parser.error(str(e))
    return args


@contextlib.contextmanager
def conv_algo_env(algo: Optional[str]):
    """``MMDCLS_CONV_ALGO`` set to ``algo`` (unchanged if None) inside, restored after."""
    from mmdcls.ops.conv import ENV_VAR
    previous = os.environ.get(ENV_VAR)
    if algo is not None:
        os.environ[ENV_VAR] = algo
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if not args.smoke and device.type != 'cuda':
        print(f'benchmark_gpu.py needs a CUDA device, got --device {args.device}; --smoke '
              f'--device cpu checks the script on the CPU')
        return 2
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(NO_CUDA)
        return 2
    with conv_algo_env(args.algo), recompile_limit(COMPILE_VARIANTS_LIMIT), \
            cudnn_benchmark(device.type == 'cuda' and not args.no_cudnn_benchmark):
        report = run(args, device)
    failures = report['failures']
    if failures:
        enforced = not (args.smoke or args.no_check)
        print(f'\nTargets missed{"" if enforced else " (not enforced)"}:\n  ' +
              '\n  '.join(failures))
        return 1 if enforced else 0
    print(f'\nAll targets met: v0 and gauss <= {TARGET_RATIO}x the 7x7 twin (compiled: of the '
          f'compiled twin), train peak memory <= {TARGET_MEMORY}x, faster than the release op.')
    return 0


def write_json(path: Optional[str], report: dict) -> None:
    if path:
        with open(path, 'w') as f:
            json.dump(report, f, indent=1)


def run(args, device: torch.device) -> dict:
    """Builds the models, measures every row of ``args.rows`` and prints the table; returns
    the report (also written to ``args.json`` after every row, so that an interrupted run
    keeps what it measured)."""
    start = time.perf_counter()
    env = environment(device)
    print(', '.join(f'{k} {v}' for k, v in env.items()))
    print(
        f'{args.rounds} rounds after {args.warmup} warm-ups per row (median), compile backend '
        f'{args.compile_backend}, DCLS positions spread'
        f'{", SMOKE: tiny input, targets not enforced" if args.smoke else ""}',
        flush=True)
    models, release_missing = build_models(device, SMOKE_ARCH if args.smoke else 'tiny')
    compiled = {}
    if any(row.compiled for row in args.rows):
        compiled = {
            name: torch.compile(models[name], backend=args.compile_backend)
            for name in COMPILED_MODELS
        }
    report = dict(
        environment=env,
        settings=dict(
            device=str(device),
            rounds=args.rounds,
            warmup=args.warmup,
            smoke=args.smoke,
            compile_backend=args.compile_backend,
            positions='spread'),
        targets=dict(ratio=TARGET_RATIO, memory=TARGET_MEMORY, vs_release=TARGET_VS_RELEASE),
        rows=[],
        not_run=[],
        failures=[release_missing] if release_missing else [],
        passed=False,
        seconds=0.0)
    print(HEADER)
    print('-' * len(HEADER), flush=True)
    for index, row in enumerate(args.rows):
        if args.time_limit and time.perf_counter() - start > args.time_limit:
            report['not_run'] = [r.name for r in args.rows[index:]]
            report['failures'].append(f'not measured (past --time-limit {args.time_limit:g} s): '
                                      f'{", ".join(report["not_run"])}')
            print(f'time limit reached: {", ".join(report["not_run"])} not run')
            break
        result = measure_row(row, models, compiled, device, args.rounds, args.warmup)
        for name, figures in result['models'].items():
            print(format_model_line(row.name, name, figures), flush=True)
        if result['late_graphs']:
            print(f'{row.name:<26} note: {result["late_graphs"]} graphs compiled during the timed '
                  'rounds: these times include compiling')
        report['rows'].append(result)
        report['failures'] += check_row(result)
        report.update(passed=not report['failures'], seconds=time.perf_counter() - start)
        write_json(args.json, report)
    report.update(passed=not report['failures'], seconds=time.perf_counter() - start)
    write_json(args.json, report)
    print('ms = median over rounds; vs 7x7 / vs release = median over rounds of time / time of '
          'the 7x7 twin / of the release op (dcls 0.1.1) in the same round (compiled rows: of '
          'the compiled twin); peak = peak memory of one train step above what was allocated '
          'before it.')
    print(f'{report["seconds"]:.0f} s in all; per row: ' +
          ', '.join(f'{r["row"]} {r["seconds"]:.0f} s' for r in report['rows']))
    return report


if __name__ == '__main__':
    sys.exit(main())
