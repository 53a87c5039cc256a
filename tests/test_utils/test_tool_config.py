"""The setup shared by tools/train.py and tools/test.py (mmdcls.utils.tool_setup): config
loading, the toolkit of a config (read before loading), a missing or broken toolkit, CPU
distributed setup."""
import glob
import importlib.util
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmdcls.utils import config_checks, tool_setup
from mmdcls.utils.tool_setup import (ToolkitNotInstalledError, apply_toolkit_defaults, detect_scope,
                                     load_tool_config, prepare_cpu_distributed, select_toolkit)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIG = osp.join(REPO, 'configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py')
DET_CONFIG = osp.join(REPO, 'configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py')


def test_work_dir_from_command_line_else_config_name():
    cfg = load_tool_config(SEG_CONFIG, 'none', {'train_cfg.max_iters': 7})
    assert cfg.work_dir == osp.join('./work_dirs', 'upernet_convnext-dcls-demo_tiny-ade-128x128')
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'none'
    cfg = load_tool_config(SEG_CONFIG, 'slurm', None, '/tmp/somewhere')
    assert cfg.work_dir == '/tmp/somewhere' and cfg.launcher == 'slurm'
    with pytest.raises(FileNotFoundError, match='config file not found: .*nope.py'):
        load_tool_config(osp.join(REPO, 'nope.py'))


def test_cfg_options_are_merged_before_the_checks():
    """The tools check the config they run: --cfg-options values included."""
    cfg = load_tool_config(SEG_CONFIG, 'none', {'model.backbone.arch.kernel_count': 0})
    with pytest.raises(
            config_checks.ConfigCheckError,
            match=r'model.backbone \(ConvNeXtDCLS\): kernel_count must be a positive '
            'int, got 0'):
        config_checks.check_config(cfg, phases=())


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


def test_tool_setup_names_live_in_tool_setup_only():
    """config_checks only checks: the setup functions have one home."""
    for name in ('select_toolkit', 'load_tool_config', 'prepare_cpu_distributed'):
        assert callable(getattr(tool_setup, name))
        assert not hasattr(config_checks, name), name


# ---------------------------------------------------------------------- the config's toolkit
def _write(path, text):
    path.write_text(text)
    return str(path)


def test_scope_read_without_loading(tmp_path):
    """No toolkit is imported to tell a config's scope: its own default_scope, else its
    bases' (toolkit:: bases, local files, new-style read_base imports)."""
    assert detect_scope(DET_CONFIG) == 'mmdet' and detect_scope(SEG_CONFIG) == 'mmseg'
    imagenet = sorted(glob.glob(osp.join(REPO, 'configs', 'imagenet', '*.py')))
    for path in imagenet:  # mmpretrain:: bases, some through a local base file
        assert detect_scope(path) == 'mmpretrain', path
    local = _write(tmp_path / 'local.py', "_base_ = ['./runtime.py']\nmodel = dict()\n")
    _write(tmp_path / 'runtime.py', "_base_ = 'mmpretrain::_base_/default_runtime.py'\n")
    assert detect_scope(local) == 'mmpretrain'
    own = _write(tmp_path / 'own.py',
                 "_base_ = 'mmpretrain::_base_/default_runtime.py'\ndefault_scope = 'mmseg'\n")
    assert detect_scope(own) == 'mmseg'
    new_style = _write(
        tmp_path / 'new.py', 'from mmengine.config import read_base\n'
        'with read_base():\n'
        '    from mmpretrain.configs._base_.default_runtime import *\n')
    assert detect_scope(new_style) == 'mmpretrain'
    loop = _write(tmp_path / 'loop.py', "_base_ = './loop.py'\n")
    assert detect_scope(loop) is None
    assert detect_scope(_write(tmp_path / 'c.json', '{"default_scope": "mmdet"}')) is None


@pytest.fixture
def without_mmpretrain(monkeypatch):
    """This environment as one where mmpretrain is not installed (whether it is or not)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name.split('.')[0] == 'mmpretrain' else real(name, *a))


@pytest.fixture
def broken_mmpretrain(monkeypatch, tmp_path):
    """An mmpretrain that is installed but fails to import, as with a torchvision built for
    another torch."""
    package = tmp_path / 'fake' / 'mmpretrain'
    package.mkdir(parents=True)
    (package /
     '__init__.py').write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    for name in [m for m in sys.modules if m.split('.')[0] == 'mmpretrain']:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / 'fake'))
    importlib.invalidate_caches()
    return str(tmp_path / 'fake')


def test_missing_toolkit_stops_before_loading(tmp_path, without_mmpretrain):
    path = _write(tmp_path / 'cls.py', "_base_ = 'mmpretrain::_base_/default_runtime.py'\n")
    with pytest.raises(ToolkitNotInstalledError) as info:
        load_tool_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: default_scope 'mmpretrain' runs in mmpretrain, which "
                              'is not installed in this Python environment')
    assert "pip install 'mmpretrain==1.2.0'" in message and 'torchvision' in message
    assert info.value.name == 'mmpretrain' and isinstance(info.value, ModuleNotFoundError)
    # a loaded config (e.g. its scope set with --cfg-options) is checked the same way
    cfg = Config.fromfile(_write(tmp_path / 'scoped.py', "default_scope = 'mmpretrain'\n"))
    with pytest.raises(ToolkitNotInstalledError, match="scoped.py: default_scope 'mmpretrain'"):
        select_toolkit(cfg)


def test_broken_toolkit_names_the_import_error(tmp_path, broken_mmpretrain):
    path = _write(tmp_path / 'cls.py', "_base_ = 'mmpretrain::_base_/default_runtime.py'\n")
    with pytest.raises(
            ToolkitNotInstalledError,
            match=r'installed but does not import here \(RuntimeError: operator '
            r'torchvision::nms does not exist\)'):
        load_tool_config(path)


def test_setup_check_command(tmp_path, without_mmpretrain, capsys):
    """python -m mmdcls.utils.tool_setup CONFIG (run by tools/dist_*.sh before torchrun)."""
    assert tool_setup.main([SEG_CONFIG]) == 0
    assert capsys.readouterr().out.strip() == 'mmseg'
    path = _write(tmp_path / 'cls.py', "_base_ = 'mmpretrain::_base_/default_runtime.py'\n")
    assert tool_setup.main([path]) == 2
    assert 'mmpretrain==1.2.0' in capsys.readouterr().err


def test_mmpretrain_loaders_collate_as_its_tools_do():
    cfg = Config(
        dict(
            train_dataloader=dict(batch_size=2),
            test_dataloader=dict(collate_fn=dict(type='pseudo_collate'))))
    apply_toolkit_defaults(cfg, 'mmseg')
    assert 'collate_fn' not in cfg.train_dataloader
    apply_toolkit_defaults(cfg, 'mmpretrain')
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    assert cfg.test_dataloader.collate_fn == dict(type='pseudo_collate')  # the config's wins
