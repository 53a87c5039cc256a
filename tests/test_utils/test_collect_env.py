"""The bug-report environment summary."""
import importlib
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

import mmdcls
from mmdcls.utils import collect_env as collect_env_module
from mmdcls.utils.collect_env import collect_env, format_env

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REQUIRED = ('Python', 'PyTorch', 'PyTorch build', 'PyTorch threads', 'CUDA available', 'CPU count',
            'NumPy', 'MMEngine', 'MMCV', 'MMCV compiled ops', 'MMDetection', 'MMSegmentation',
            'mmdcls', 'mmdcls native (C)')


def test_collect_env_reports_the_installed_stack():
    env = collect_env()
    for key in REQUIRED:
        assert key in env, key
    assert env['PyTorch'] == torch.__version__
    assert env['NumPy'] == np.__version__
    assert env['mmdcls'] == mmdcls.__version__
    assert env['CUDA available'] == str(torch.cuda.is_available())
    assert env['Python'].startswith(sys.version.split()[0])
    for key, module in (('MMEngine', 'mmengine'), ('MMCV', 'mmcv'), ('MMDetection', 'mmdet'),
                        ('MMSegmentation', 'mmseg')):
        installed = pytest.importorskip(module)
        assert env[key] == installed.__version__, key
    assert env['MMCV compiled ops'] == 'ok'
    from mmdcls.ops.kernels import cpu
    expected = ('disabled'
                if cpu.mode() == '0' else 'ok' if cpu.library() is not None else 'unavailable')
    assert env['mmdcls native (C)'].startswith(expected)


def test_missing_or_broken_toolkit_is_reported_not_raised(monkeypatch):
    real_import = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name == 'mmseg':
            raise ModuleNotFoundError("No module named 'mmseg'", name='mmseg')
        if name == 'mmdet':
            raise ImportError('mmcv==9.9 is incompatible')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(collect_env_module.importlib, 'import_module', fake_import)
    env = collect_env()
    assert env['MMSegmentation'] == 'not installed'
    assert env['MMDetection'].startswith('error: ImportError') and 'mmcv==9.9' in env['MMDetection']


def test_format_env_indents_multiline_values():
    text = format_env({'a': '1', 'b': 'x\ny'})
    assert text.splitlines() == ['a: 1', 'b: x', '    y']


@pytest.mark.parametrize('command', [
    [sys.executable, '-m', 'mmdcls.utils.collect_env'],
    [sys.executable, osp.join('tools', 'misc', 'collect_env.py')],
])
def test_command_line(command):
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for key in REQUIRED:
        assert any(line.startswith(key + ': ') for line in lines), key
    assert f'mmdcls: {mmdcls.__version__}' in lines
