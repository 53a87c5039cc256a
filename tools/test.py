"""Test (and evaluate) a detector (mmdet config), a segmentor (mmseg config) or an image
classifier (mmpretrain config) with mmdcls.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE|DIR] [--show-dir DIR]
                                           [--tta] [--cfg-options k=v ...] [--launcher ...]

mmdet 3.3.0's / mmseg 1.2.2's / mmpretrain 1.2.0's ``tools/test.py`` in one script; the toolkit
is the config's ``default_scope`` (:mod:`mmdcls.utils.tool_setup`). ``--out``: mmdet and
mmpretrain dump predictions to a ``.pkl`` file, mmseg writes the predicted label maps into a
folder. ``--show-dir``: painted predictions under ``work_dir/<timestamp>/<show-dir>`` (mmdet),
``work_dir/<show-dir>/vis_data/vis_image`` (mmseg) or ``work_dir/<show-dir>`` (mmpretrain).

Exit status: 0 after the evaluation, 2 when the run cannot start (config, checkpoint or toolkit
missing, a checkpoint that is not a readable torch file, ``--out`` the same file as the config
or the checkpoint, config check failed: one line naming what to fix), 1 on any other error
(traceback).
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

from mmengine.config import ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdcls.models.utils import check_checkpoint_file
from mmdcls.utils.config_checks import ConfigCheckError, check_config
from mmdcls.utils.safe_output import check_outputs
from mmdcls.utils.tool_errors import SETUP_ERRORS, report_tool_error
from mmdcls.utils.tool_setup import (apply_toolkit_defaults, load_tool_config,
                                     prepare_cpu_distributed, select_toolkit)

import mmdcls  # noqa: F401,E402  isort:skip  (safe globals for torch.load, registrations)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and eval) an mmdet / mmseg / mmpretrain model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='mmdet / mmpretrain: dump predictions to a .pkl file; mmseg: '
        'folder for the predicted label maps')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images are saved (relative: '
        'mmdet under work_dir/<timestamp>/, mmseg under work_dir/ in '
        'vis_data/vis_image, mmpretrain under work_dir/)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--no-validate-config',
        action='store_true',
        help='skip the dataset / checkpoint checks done before building')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    """Turns on drawing in the toolkit's visualization hook (mmdet / mmseg: ``draw``,
    mmpretrain: ``enable``)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise ConfigCheckError(f'{args.config}: --show/--show-dir need '
                               'default_hooks.visualization (DetVisualizationHook / '
                               'SegVisualizationHook / VisualizationHook)')
    hook = hooks['visualization']
    scope = cfg.get('default_scope')
    hook['enable' if scope == 'mmpretrain' else 'draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        # relative dirs go under work_dir in every toolkit
        show_dir = (
            args.show_dir if osp.isabs(args.show_dir) else osp.join(cfg.work_dir, args.show_dir))
        if scope == 'mmdet':
            hook['test_out_dir'] = args.show_dir  # mmdet joins work_dir/<timestamp> itself
        elif scope == 'mmpretrain':
            hook['out_dir'] = show_dir
            hook['interval'] = 1  # every test image
        else:
            # mmseg's hook draws through the visualizer's backends into
            # <save_dir>/vis_data/vis_image.
            cfg.visualizer['save_dir'] = show_dir
            hook['interval'] = 1  # every test image, not every 50th
    return cfg


def setup_tta(cfg, scope: str):
    if scope == 'mmdet':
        if 'tta_model' not in cfg:
            warnings.warn('no tta_model in the config: using DetTTAModel with nms 0.5')
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn('no tta_pipeline in the config: using flip TTA of the test pipeline')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[dict(type='RandomFlip', prob=1.),
                             dict(type='RandomFlip', prob=0.)],
                            [
                                dict(
                                    type='PackDetInputs',
                                    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))
                            ]])
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    elif scope == 'mmpretrain':
        # as mmpretrain's tools/test.py: average the class scores of the image and its flip
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[dict(type='RandomFlip', prob=1.),
                             dict(type='RandomFlip', prob=0.)], [test_pipeline[-1]]])
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    else:
        for key in ('tta_model', 'tta_pipeline'):
            if key not in cfg:
                raise ConfigCheckError(f'{cfg.filename}: --tta needs {key!r} in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    return cfg


def setup_cfg(args):
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    if '://' not in args.checkpoint:
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'checkpoint {args.checkpoint!r} not found')
        check_checkpoint_file(args.checkpoint)
    check_outputs({'--out': args.out}, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint})
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    return cfg


def prepare(args):
    """``(cfg, scope)`` ready to build, or a setup error
    (:data:`~mmdcls.utils.tool_errors.SETUP_ERRORS`)."""
    cfg = setup_cfg(args)
    scope = select_toolkit(cfg)
    if not args.no_validate_config:
        check_config(cfg, phases=('test', ))
    if args.tta:
        if scope == 'mmpretrain' and (args.show or args.show_dir):
            raise ConfigCheckError('--tta with --show / --show-dir: mmpretrain\'s '
                                   'VisualizationHook cannot draw test-time-augmented batches; '
                                   'run them separately')
        cfg = setup_tta(cfg, scope)
    if scope == 'mmseg' and args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    elif args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigCheckError(f'--out {args.out!r}: {scope} dumps predictions to a .pkl file')
    apply_toolkit_defaults(cfg, scope, loaders=('test_dataloader', ))
    return cfg, scope


def run(cfg, scope: str, out=None) -> dict:
    """Builds the runner and tests; returns the metrics."""
    prepare_cpu_distributed(cfg)  # no CUDA: gloo backend; torchrun: process group, CPU DDP
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if out is not None and scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    elif out is not None and scope == 'mmpretrain':
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    return runner.test()


def main(argv=None) -> int:
    """The exit status: 0 after the evaluation, 2 when the run cannot start as configured."""
    args = parse_args(argv)
    try:
        cfg, scope = prepare(args)
    except SETUP_ERRORS as err:
        return report_tool_error('tools/test.py', err)
    run(cfg, scope, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
