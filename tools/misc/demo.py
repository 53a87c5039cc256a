"""``make demo``: ConvNeXt-DCLS pretraining, detection and segmentation, end to end on CPU.

    python tools/misc/demo.py [--work-dir work_dirs/demo] [--cls-epochs N] [--det-epochs N]
                              [--seg-iters N] [--cls-python PYTHON] [--sequential]
                              [--tasks cls det seg]

1. generates ``data/tiny_textures``, ``data/tiny_coco`` and ``data/tiny_ade`` if missing
   (``tools/misc/make_tiny_datasets.py``);
2. pretrains the demo backbone on tiny_textures classification in mmpretrain
   (``configs/_demo_/convnext-dcls-demo_tiny-textures-64x64-cls.py``, the release's head: GAP ->
   LayerNorm -> Linear). mmpretrain needs torchvision, which loads only with a PyPI torch
   build, so this stage runs in another interpreter: ``--cls-python``, else
   ``$MMDCLS_CLS_PYTHON``, else ``.venv-compat/bin/python`` (``make env-compat``);
3. trains Mask R-CNN (``configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py``) and
   UperNet (``configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py``) with their
   backbones initialised from that checkpoint
   (``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``, the strict key
   report in their logs), in this interpreter (mmcv's compiled ops). The two run as two
   single-threaded processes side by side (one core each: on a small shared CPU two OpenMP
   threads per process are slower than one); the pretraining runs alone on two threads;
4. each model is evaluated once before training (at start: random for classification, the
   pretrained backbone with new heads for detection / segmentation) and once after; prints the
   table of top-1, COCO bbox / segm mAP (pycocotools) and mIoU, and writes the learned
   positions of the three backbones to ``<work-dir>/positions_*.png``.

Without ``cls`` in ``--tasks`` detection and segmentation start from scratch, as before the
pretraining stage existed. Exits with status 1 if a trained metric is not clearly above the
one at start.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: interpreter of the pretraining stage when neither --cls-python nor the variable is given
DEFAULT_CLS_PYTHON = osp.join('.venv-compat', 'bin', 'python')
CLS_PYTHON_ENV = 'MMDCLS_CLS_PYTHON'
TASKS = {
    'cls':
    dict(
        config='configs/_demo_/convnext-dcls-demo_tiny-textures-64x64-cls.py',
        title='ImageClassifier, tiny_textures (val, 96)',
        metrics=[('accuracy/top1', 'top-1 (%)')],
        # 4 balanced classes: chance is 25 %
        main='accuracy/top1',
        margin=25.0),
    'det':
    dict(
        config='configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py',
        title='Mask R-CNN, tiny_coco (val, 30 images)',
        metrics=[('coco/bbox_mAP', 'bbox mAP'), ('coco/bbox_mAP_50', 'bbox mAP@0.5'),
                 ('coco/segm_mAP', 'segm mAP'), ('coco/segm_mAP_50', 'segm mAP@0.5')],
        # "learned" = trained main metric at least this much above the untrained one
        main='coco/bbox_mAP',
        margin=0.1),
    'seg':
    dict(
        config='configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py',
        title='UperNet, tiny_ade (val, 30 images)',
        metrics=[('mIoU', 'mIoU (%)'), ('mAcc', 'mAcc (%)'), ('aAcc', 'aAcc (%)')],
        main='mIoU',
        margin=20.0),
}
DEFAULT_CLS_EPOCHS = 20
DEFAULT_DET_EPOCHS = 24
DEFAULT_SEG_ITERS = 300
#: tasks that start from the pretraining checkpoint when 'cls' runs
DOWNSTREAM = ('det', 'seg')


class RecordValMetricsHook:
    """Evaluates the model once before training and records every validation's metrics.

    Registered on the runner (not through the config) by :func:`run_worker`; built lazily so
    that importing this file needs no mmengine.
    """

    @staticmethod
    def build():
        from mmengine.hooks import Hook

        class _Hook(Hook):
            priority = 'LOWEST'

            def __init__(self):
                self.metrics = []

            def before_train(self, runner):
                # After weight init and resume, before the first iteration: the untrained
                # model through the same ValLoop / evaluator as the trained one.
                runner.val_loop.run()
                runner.model.train()

            def after_val_epoch(self, runner, metrics=None):
                self.metrics.append(dict(metrics or {}))

        return _Hook()


def run_worker(task, work_dir, amount, pretrained=None):
    """Trains one task in this process; writes ``<work_dir>/metrics.json``.

    ``amount``: epochs (cls, det) or iterations (seg). ``pretrained``: a checkpoint of the
    classification stage whose ``backbone.*`` initialises the detection / segmentation
    backbone.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mmdcls  # noqa: F401  (registrations, safe globals)

    spec = TASKS[task]
    cfg = Config.fromfile(osp.join(REPO, spec['config']))
    cfg.work_dir = work_dir
    if pretrained:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')
    if task == 'cls':
        cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = amount
        cfg.default_hooks.checkpoint.interval = amount
        cfg.param_scheduler[-1].end = amount
    elif task == 'det':
        cfg.train_cfg.max_epochs = amount
        cfg.train_cfg.val_interval = amount
        cfg.default_hooks.checkpoint.interval = amount
        for sched in cfg.param_scheduler:
            if sched.type == 'CosineAnnealingLR':
                sched.T_max = sched.end = amount
    else:
        cfg.train_cfg.max_iters = amount
        cfg.train_cfg.val_interval = amount
        cfg.default_hooks.checkpoint.interval = amount
        cfg.param_scheduler[-1].end = amount
    from mmdcls.utils.config_checks import check_config
    from mmdcls.utils.tool_setup import select_toolkit
    select_toolkit(cfg)
    check_config(cfg, phases=('train', 'val'))
    runner = Runner.from_cfg(cfg)
    hook = RecordValMetricsHook.build()
    runner.register_hook(hook)
    start = time.time()
    runner.train()
    if len(hook.metrics) < 2:
        raise RuntimeError(f'{task}: expected validations before and after training, got '
                           f'{len(hook.metrics)}')
    with open(osp.join(REPO, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    result = dict(
        task=task,
        untrained=hook.metrics[0],
        trained=hook.metrics[-1],
        train_and_eval_s=time.time() - start,
        checkpoint=checkpoint,
        pretrained=pretrained)
    from mmdcls.utils.safe_output import safe_output
    with safe_output(osp.join(work_dir, 'metrics.json')) as tmp, open(tmp, 'w') as f:
        json.dump(result, f, indent=1, default=float)  # metrics may be numpy scalars


def worker_env(threads=1):
    env = dict(os.environ)
    # One OpenMP thread per process when two run side by side: see the module docstring.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS='ignore')
    return env


def cls_python(args):
    """The interpreter of the pretraining stage; exits with a clear message if unusable."""
    python = args.cls_python or os.environ.get(CLS_PYTHON_ENV) or DEFAULT_CLS_PYTHON
    where = ('--cls-python' if args.cls_python else
             f'${CLS_PYTHON_ENV}' if os.environ.get(CLS_PYTHON_ENV) else 'the default')
    hint = (f'The pretraining stage runs mmpretrain, which needs torchvision and so a PyPI torch '
            f'build: create .venv-compat (make env-compat), or name an interpreter that imports '
            f'mmpretrain and mmdcls with --cls-python / ${CLS_PYTHON_ENV}, or leave the stage '
            f'out with --tasks det seg (detection and segmentation then start from scratch).')
    if not (osp.isfile(python) and os.access(python, os.X_OK)):
        sys.exit(f'demo: no interpreter at {python} ({where}). {hint}')
    check = subprocess.run([python, '-c', 'import mmpretrain, mmdcls'],
                           cwd=REPO,
                           env=worker_env(),
                           capture_output=True,
                           text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ['?'])[-1]
        sys.exit(f'demo: {python} ({where}) cannot import mmpretrain and mmdcls ({last}). {hint}')
    return python


def launch(task, args, python=None, pretrained=None, threads=1):
    work_dir = osp.join(args.work_dir, task)
    os.makedirs(work_dir, exist_ok=True)
    log = open(osp.join(work_dir, 'demo.log'), 'w')
    amount = {'cls': args.cls_epochs, 'det': args.det_epochs, 'seg': args.seg_iters}[task]
    cmd = [
        python or sys.executable,
        osp.abspath(__file__), '--worker', task, '--work-dir', args.work_dir, '--amount',
        str(amount)
    ]
    if pretrained:
        cmd += ['--pretrained', pretrained]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=worker_env(threads), stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def wait_all(procs, start):
    """Waits for the workers, printing a progress line every 30 s."""
    last = 0.0
    while any(p.poll() is None for p, _ in procs.values()):
        time.sleep(2)
        if time.time() - last >= 30:
            last = time.time()
            running = [t for t, (p, _) in procs.items() if p.poll() is None]
            print(f'  [{time.time() - start:6.0f} s] training: {", ".join(running)}', flush=True)
    failed = []
    for task, (proc, log) in procs.items():
        log.close()
        if proc.returncode != 0:
            failed.append(task)
    return failed


def format_table(results):
    lines = [f'{"model / data":42s} {"metric":14s} {"at start":>10s} {"trained":>10s}', '-' * 79]
    for task, res in results.items():
        spec = TASKS[task]
        for i, (key, label) in enumerate(spec['metrics']):
            before, after = res['untrained'].get(key), res['trained'].get(key)
            lines.append(f'{spec["title"] if i == 0 else "":42s} {label:14s} '
                         f'{before:10.3f} {after:10.3f}')
        lines.append(f'{"":42s} {"train+eval s":14s} {"":10s} {res["train_and_eval_s"]:10.0f}')
    return '\n'.join(lines)


def learned(results):
    """Tasks whose main metric did not clearly improve."""
    bad = []
    for task, res in results.items():
        spec = TASKS[task]
        if res['trained'][spec['main']] < res['untrained'][spec['main']] + spec['margin']:
            bad.append(task)
    return bad


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--cls-epochs', type=int, default=DEFAULT_CLS_EPOCHS)
    parser.add_argument('--det-epochs', type=int, default=DEFAULT_DET_EPOCHS)
    parser.add_argument('--seg-iters', type=int, default=DEFAULT_SEG_ITERS)
    parser.add_argument(
        '--cls-python',
        help=f'interpreter with mmpretrain for the pretraining stage (default: '
        f'${CLS_PYTHON_ENV}, else {DEFAULT_CLS_PYTHON})')
    parser.add_argument(
        '--sequential',
        action='store_true',
        help='train detection, then segmentation (default: side by side)')
    parser.add_argument(
        '--tasks',
        nargs='+',
        choices=list(TASKS),
        default=list(TASKS),
        help='cls = the pretraining stage, which det / seg then start from')
    parser.add_argument('--worker', choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument('--amount', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--pretrained', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def report_failures(failed, work_dir):
    for task in failed:
        log = osp.join(work_dir, task, 'demo.log')
        print(f'\n{task} failed; last lines of {log}:')
        with open(log) as f:
            print(''.join(f.readlines()[-25:]))


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)  # configs name data/ and work_dirs/ relative to the repository
    if args.worker:
        run_worker(args.worker, osp.join(args.work_dir, args.worker), args.amount, args.pretrained)
        return 0
    start = time.time()
    # Before generating anything: a missing interpreter should fail in a second, not later.
    python = cls_python(args) if 'cls' in args.tasks else None
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from make_tiny_datasets import make_all
    print(make_all('data'), flush=True)

    pretrained = None
    if python:
        print(
            f'pretraining stage: classification on tiny_textures, {args.cls_epochs} epochs, '
            f'with {python}; log in {args.work_dir}/cls/demo.log',
            flush=True)
        procs = {'cls': launch('cls', args, python=python, threads=2)}
        failed = wait_all(procs, start)
        if failed:
            report_failures(failed, args.work_dir)
            return 1
        with open(osp.join(args.work_dir, 'cls', 'metrics.json')) as f:
            pretrained = osp.join(REPO, json.load(f)['checkpoint'])
    downstream = [t for t in args.tasks if t in DOWNSTREAM]
    if downstream:
        origin = f'from {pretrained}' if pretrained else 'from scratch'
        print(
            f'training {", ".join(downstream)} {origin} on CPU (Mask R-CNN '
            f'{args.det_epochs} epochs, UperNet {args.seg_iters} iterations); logs in '
            f'{args.work_dir}/<task>/demo.log',
            flush=True)
    procs = {}
    failed = []
    for task in downstream:
        procs[task] = launch(task, args, pretrained=pretrained)
        if args.sequential:
            failed += wait_all({task: procs[task]}, start)
    if not args.sequential:
        failed += wait_all(procs, start)
    if failed:
        report_failures(failed, args.work_dir)
        return 1
    results = {}
    for task in args.tasks:
        with open(osp.join(args.work_dir, task, 'metrics.json')) as f:
            results[task] = json.load(f)
    plots = []
    for task, res in results.items():
        out = osp.join(args.work_dir, f'positions_{task}.png')
        subprocess.run([
            sys.executable, 'tools/analysis/visualize_positions.py', res['checkpoint'], '--out',
            out, '--prefix', 'backbone.'
        ],
                       check=True,
                       env=worker_env(),
                       stdout=subprocess.DEVNULL)
        plots.append(out)
    print('\n' + format_table(results))
    print(f'\npositions plots: {", ".join(plots)}')
    print(f'total time: {time.time() - start:.0f} s')
    bad = learned(results)
    if bad:
        print(f'NOT LEARNED: {bad} (trained metric not clearly above the one at start)')
        return 1
    print('learning: every trained model is well above its copy at start')
    return 0


if __name__ == '__main__':
    sys.exit(main())
