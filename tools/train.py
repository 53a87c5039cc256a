"""Train a detector (mmdet config), a segmentor (mmseg config) or an image classifier
(mmpretrain config) with mmdcls modules.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

mmdet 3.3.0's ``tools/train.py`` for the three toolkits: the toolkit is the config's
``default_scope`` (``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``; :mod:`mmdcls.utils.tool_setup`
reads it from the file before loading, so a toolkit that is not installed stops the run with
one line saying what to install). Before anything is built the config is checked
(:mod:`mmdcls.utils.config_checks`: dataset paths, annotation files, the backbone's arguments,
checkpoint path), so a wrong path stops the run with the key and file to fix.

Exit status: 0 after training, 2 when the run cannot start (config or toolkit missing, a
``--resume`` checkpoint that is not a readable torch file, config check failed: one line naming
what to fix), 1 on any other error (traceback).
"""
import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdcls.models.utils import check_checkpoint_file
from mmdcls.utils.config_checks import ConfigCheckError, check_config
from mmdcls.utils.tool_errors import SETUP_ERRORS, report_tool_error
from mmdcls.utils.tool_setup import (apply_toolkit_defaults, load_tool_config,
                                     prepare_cpu_distributed, select_toolkit)

# mmdcls first: it allow-lists mmengine's checkpoint types for torch's weights_only torch.load
# (resume) and registers the mmdcls modules.
import mmdcls  # noqa: F401,E402  isort:skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train an mmdet / mmseg / mmpretrain model (mmdcls)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='mixed precision: AmpOptimWrapper (fp16, dynamic loss scale) on GPU, '
        'mmdcls.CPUAutocastOptimWrapper (bfloat16 autocast) on CPU')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='enable automatically scaling LR')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or (no value) from the latest checkpoint in '
        'the work directory')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file. If the value to be overwritten is a list, it should '
        'be like key="[a,b]" or key=a,b. It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]". Note that the quotation marks are necessary and that no white '
        'space is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--no-validate-config',
        action='store_true',
        help='skip the dataset / checkpoint checks done before building')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp(cfg) -> str:
    """Switches ``cfg.optim_wrapper`` to mixed precision for the available device; returns the
    wrapper type chosen."""
    import torch
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper',
                                                   'mmdcls.CPUAutocastOptimWrapper'):
        raise ConfigCheckError(
            f'--amp: optim_wrapper.type is {wrapper.type!r}; --amp only replaces '
            "'OptimWrapper'. Set the mixed-precision wrapper in the config instead")
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.loss_scale = 'dynamic'
    else:
        if 'roi_head' in cfg.get('model', {}):
            # Checked here rather than failing at the first iteration deep inside mmcv.
            raise ConfigCheckError(
                f'{cfg.filename}: --amp without CUDA uses bfloat16 CPU autocast, but mmcv\'s '
                'RoIAlign (model.roi_head) has no bfloat16 CPU kernel; train this detector '
                'without --amp on CPU (segmentors and single-stage detectors work)')
        wrapper.pop('loss_scale', None)
        wrapper.type = 'mmdcls.CPUAutocastOptimWrapper'
        wrapper.dtype = 'bfloat16'
        print_log(
            '--amp without CUDA: mmengine AmpOptimWrapper needs a GPU, using '
            'mmdcls.CPUAutocastOptimWrapper (bfloat16 autocast) instead',
            logger='current',
            level=logging.WARNING)
        imports = cfg.get('custom_imports') or dict(imports=[], allow_failed_imports=False)
        names = imports.get('imports', [])
        names = [names] if isinstance(names, str) else list(names)
        if 'mmdcls.engine.optim_wrappers' not in names:
            names.append('mmdcls.engine.optim_wrappers')
        imports['imports'] = names
        cfg.custom_imports = imports
        import mmdcls.engine.optim_wrappers  # noqa: F401  registers the wrapper now
    return wrapper.type


def setup_cfg(args):
    """The config to train: file + ``--cfg-options`` + the command-line flags."""
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    if args.amp:
        enable_amp(cfg)

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise ConfigCheckError(f'{args.config}: --auto-scale-lr needs "auto_scale_lr" with '
                                   '"enable" and "base_batch_size" in the config')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume!r}: checkpoint not found')
        check_checkpoint_file(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def prepare(args):
    """The config ready to build, or a setup error
    (:data:`~mmdcls.utils.tool_errors.SETUP_ERRORS`)."""
    cfg = setup_cfg(args)
    scope = select_toolkit(cfg)
    if not args.no_validate_config:
        check_config(cfg, phases=('train', 'val'))
    apply_toolkit_defaults(cfg, scope)
    return cfg, scope


def main(argv=None) -> int:
    """The exit status: 0 after training, 2 when the run cannot start as configured."""
    args = parse_args(argv)
    try:
        cfg, scope = prepare(args)
    except SETUP_ERRORS as err:
        return report_tool_error('tools/train.py', err)
    if scope == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()

    prepare_cpu_distributed(cfg)  # no CUDA: gloo backend; torchrun: process group, CPU DDP
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
