"""``make demo``: ConvNeXt-DCLS detection and segmentation, end to end on CPU in minutes.

    python tools/misc/demo.py [--work-dir work_dirs/demo] [--det-epochs N] [--seg-iters N]
                              [--sequential]

1. generates ``data/tiny_coco`` and ``data/tiny_ade`` if missing
   (``tools/misc/make_tiny_datasets.py``);
2. trains Mask R-CNN (``configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py``) and
   UperNet (``configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py``) from scratch,
   each evaluated once before training (the untrained model) and once after; the two run as
   two single-threaded processes side by side (one core each: on a small shared CPU two
   OpenMP threads per process are slower than one);
3. prints the table of COCO bbox / segm mAP (pycocotools) and mIoU, untrained vs trained, and
   writes the learned positions of both backbones to ``<work-dir>/positions_*.png``.

Exits with status 1 if a trained metric is not clearly above the untrained one.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = {
    'det': dict(
        config='configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py',
        title='Mask R-CNN, tiny_coco (val, 30 images)',
        metrics=[('coco/bbox_mAP', 'bbox mAP'), ('coco/bbox_mAP_50', 'bbox mAP@0.5'),
                 ('coco/segm_mAP', 'segm mAP'), ('coco/segm_mAP_50', 'segm mAP@0.5')],
        # "learned" = trained main metric at least this much above the untrained one
        main='coco/bbox_mAP', margin=0.1),
    'seg': dict(
        config='configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py',
        title='UperNet, tiny_ade (val, 30 images)',
        metrics=[('mIoU', 'mIoU (%)'), ('mAcc', 'mAcc (%)'), ('aAcc', 'aAcc (%)')],
        main='mIoU', margin=20.0),
}
DEFAULT_DET_EPOCHS = 24
DEFAULT_SEG_ITERS = 300


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


def run_worker(task, work_dir, det_epochs, seg_iters):
    """Trains one task in this process; writes ``<work_dir>/metrics.json``."""
    import mmdcls  # noqa: F401  (registrations, safe globals)
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmdcls.utils.config_checks import check_config, select_toolkit

    spec = TASKS[task]
    cfg = Config.fromfile(osp.join(REPO, spec['config']))
    cfg.work_dir = work_dir
    if task == 'det':
        cfg.train_cfg.max_epochs = det_epochs
        cfg.train_cfg.val_interval = det_epochs
        cfg.default_hooks.checkpoint.interval = det_epochs
        for sched in cfg.param_scheduler:
            if sched.type == 'CosineAnnealingLR':
                sched.T_max = sched.end = det_epochs
    else:
        cfg.train_cfg.max_iters = seg_iters
        cfg.train_cfg.val_interval = seg_iters
        cfg.default_hooks.checkpoint.interval = seg_iters
        cfg.param_scheduler[-1].end = seg_iters
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
    result = dict(task=task, untrained=hook.metrics[0], trained=hook.metrics[-1],
                  train_and_eval_s=time.time() - start, checkpoint=checkpoint)
    with open(osp.join(work_dir, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=1, default=float)  # metrics may be numpy scalars


def worker_env():
    env = dict(os.environ)
    # One OpenMP thread per process: see the module docstring.
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    return env


def launch(task, args):
    work_dir = osp.join(args.work_dir, task)
    os.makedirs(work_dir, exist_ok=True)
    log = open(osp.join(work_dir, 'demo.log'), 'w')
    cmd = [sys.executable, osp.abspath(__file__), '--worker', task, '--work-dir', args.work_dir,
           '--det-epochs', str(args.det_epochs), '--seg-iters', str(args.seg_iters)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    return proc, log


def wait_all(procs, start):
    """Waits for the workers, printing a progress line every 30 s."""
    last = 0.0
    while any(p.poll() is None for p, _ in procs.values()):
        time.sleep(2)
        if time.time() - last >= 30:
            last = time.time()
            running = [t for t, (p, _) in procs.items() if p.poll() is None]
            print(f'  [{time.time() - start:6.0f} s] training: {", ".join(running)}',
                  flush=True)
    failed = []
    for task, (proc, log) in procs.items():
        log.close()
        if proc.returncode != 0:
            failed.append(task)
    return failed


def format_table(results):
    lines = [f'{"model / data":42s} {"metric":14s} {"untrained":>10s} {"trained":>10s}',
             '-' * 79]
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
    parser.add_argument('--det-epochs', type=int, default=DEFAULT_DET_EPOCHS)
    parser.add_argument('--seg-iters', type=int, default=DEFAULT_SEG_ITERS)
    parser.add_argument('--sequential', action='store_true',
                        help='train one task after the other (default: side by side)')
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument('--worker', choices=sorted(TASKS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)  # configs name data/ and work_dirs/ relative to the repository
    if args.worker:
        run_worker(args.worker, osp.join(args.work_dir, args.worker), args.det_epochs,
                   args.seg_iters)
        return 0
    start = time.time()
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from make_tiny_datasets import make_all
    print(make_all('data'), flush=True)
    print(f'training {", ".join(args.tasks)} from scratch on CPU (Mask R-CNN '
          f'{args.det_epochs} epochs, UperNet {args.seg_iters} iterations); logs in '
          f'{args.work_dir}/<task>/demo.log', flush=True)
    procs = {}
    failed = []
    for task in args.tasks:
        procs[task] = launch(task, args)
        if args.sequential:
            failed += wait_all({task: procs[task]}, start)
    if not args.sequential:
        failed += wait_all(procs, start)
    if failed:
        for task in failed:
            log = osp.join(args.work_dir, task, 'demo.log')
            print(f'\n{task} failed; last lines of {log}:')
            with open(log) as f:
                print(''.join(f.readlines()[-25:]))
        return 1
    results = {}
    for task in args.tasks:
        with open(osp.join(args.work_dir, task, 'metrics.json')) as f:
            results[task] = json.load(f)
    plots = []
    for task, res in results.items():
        out = osp.join(args.work_dir, f'positions_{task}.png')
        subprocess.run([sys.executable, 'tools/analysis/visualize_positions.py',
                        res['checkpoint'], '--out', out, '--prefix', 'backbone.'],
                       check=True, env=worker_env(), stdout=subprocess.DEVNULL)
        plots.append(out)
    print('\n' + format_table(results))
    print(f'\npositions plots: {", ".join(plots)}')
    print(f'total time: {time.time() - start:.0f} s')
    bad = learned(results)
    if bad:
        print(f'NOT LEARNED: {bad} (trained metric not clearly above the untrained one)')
        return 1
    print('learning: every trained model is well above its untrained copy')
    return 0


if __name__ == '__main__':
    sys.exit(main())
