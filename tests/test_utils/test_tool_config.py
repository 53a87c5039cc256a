"""The config setup shared by tools/train.py and tools/test.py (mmdcls.utils.config_checks)."""
import os.path as osp

import torch

from mmdcls.utils.config_checks import load_tool_config, prepare_cpu_distributed

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIG = osp.join(REPO, 'configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py')


def test_work_dir_from_command_line_else_config_name():
    cfg = load_tool_config(SEG_CONFIG, 'none', {'train_cfg.max_iters': 7})
    assert cfg.work_dir == osp.join('./work_dirs', 'upernet_convnext-dcls-demo_tiny-ade-128x128')
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'none'
    cfg = load_tool_config(SEG_CONFIG, 'slurm', None, '/tmp/somewhere')
    assert cfg.work_dir == '/tmp/somewhere' and cfg.launcher == 'slurm'


def test_nccl_becomes_gloo_without_cuda_for_any_launcher():
    cfg = load_tool_config(SEG_CONFIG, 'slurm')
    cfg.env_cfg.dist_cfg = dict(backend='nccl')
    # slurm: the Runner initialises the process group itself, from the rewritten backend
    assert prepare_cpu_distributed(cfg) is False
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg['backend'] == expected
    cfg = load_tool_config(SEG_CONFIG, 'none')
    cfg.env_cfg.dist_cfg = dict(backend='nccl')
    assert prepare_cpu_distributed(cfg) is False
    assert cfg.env_cfg.dist_cfg['backend'] == 'nccl'  # not distributed: left as written
