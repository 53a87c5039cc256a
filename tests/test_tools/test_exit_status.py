"""tools/train.py, tools/test.py and tools/dist_*.sh: the exit status says whether the run
happened. A run that cannot start (checkpoint missing, the config's toolkit not installed) is
one line naming what to fix and exit 2, before anything is built; a completed run is
0 (tested by test_train_test.py, whose runs must exit 0)."""
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SEG_CONFIG, run_tool, tool_env

CLS_CONFIG = "_base_ = 'mmpretrain::_base_/default_runtime.py'\nmodel = dict(type='X')\n"


@pytest.fixture
def no_mmpretrain_env(tmp_path):
    """Environment variables under which mmpretrain is not installed, whether it is in this
    environment or not: a ``sitecustomize`` that blocks the import (``sys.modules`` entry None,
    which is also what ``importlib.util.find_spec`` then reports)."""
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text(
        "import sys\nsys.modules['mmpretrain'] = None  # no mmpretrain in this test's Python\n")
    paths = [str(site)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(PYTHONPATH=os.pathsep.join(paths))


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stdout, proc.stdout[-3000:]
    for needle in needles:
        assert needle in proc.stdout, (needle, proc.stdout[-3000:])


def test_test_tool_exit_status_when_the_run_cannot_start(tmp_path):
    proc = run_tool(['tools/test.py', SEG_CONFIG, tmp_path / 'none.pth', '--work-dir', tmp_path],
                    check=False,
                    timeout=120)
    _one_line_error(proc, 'tools/test.py: error: checkpoint', 'none.pth', 'not found')


@pytest.mark.parametrize('tool,option,message', [
    ('train', 'model.backbone.kernel_count=-3', 'kernel_count must be a positive int, got -3'),
    ('test', 'model.backbone.kernel_count=-3', 'kernel_count must be a positive int, got -3'),
    ('train', 'model.backbone.dilated_kernel_size=0',
     'dilated_kernel_size must be odd and positive (the depthwise layer keeps the spatial size), '
     'got (0, 0)'),
    ('test', 'model.backbone.version=v9', "version must be one of ('v0', 'v1', 'gauss', 'max'), "
     "but got 'v9'"),
    ('analysis/get_flops', 'model.backbone.dilated_kernel_size=0',
     'dilated_kernel_size must be odd and positive (the depthwise layer keeps the spatial size), '
     'got (0, 0)'),
])
def test_cfg_options_values_are_checked_before_building(tmp_path, tool, option, message):
    """The config the tools check is the one they run: --cfg-options merged in."""
    ckpt = tmp_path / 'weights.pth'
    torch.save({'state_dict': {}}, ckpt)
    args = {
        'train': [SEG_CONFIG, '--work-dir', tmp_path / 'w'],
        'test': [SEG_CONFIG, ckpt, '--work-dir', tmp_path / 'w'],
        'analysis/get_flops': [SEG_CONFIG, '--shape', '64'],
    }[tool]
    proc = run_tool(
        [f'tools/{tool}.py'] + args + ['--cfg-options', option], check=False, timeout=180)
    _one_line_error(proc)
    assert [line for line in proc.stdout.splitlines() if 'error:' in line] == [
        f'tools/{tool}.py: error: {SEG_CONFIG}: model.backbone (ConvNeXtDCLS): {message}'
    ]
    assert not (tmp_path / 'w').exists()  # stopped before the runner made its work dir


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_name_a_missing_toolkit(tmp_path, no_mmpretrain_env, tool):
    cfg = tmp_path / 'cls.py'
    cfg.write_text(CLS_CONFIG)
    args = [f'tools/{tool}.py', cfg] + ([cfg] if tool == 'test' else []) + \
        ['--work-dir', tmp_path / 'w']
    proc = run_tool(args, check=False, timeout=120, env=no_mmpretrain_env)
    _one_line_error(
        proc, f'tools/{tool}.py: error: {cfg}: default_scope \'mmpretrain\' runs in '
        'mmpretrain, which is not installed in this Python environment',
        "pip install 'mmpretrain==1.2.0'")
    assert not (tmp_path / 'w').exists()  # stopped before the runner made its work dir


@pytest.mark.skipif(sys.platform == 'win32', reason='bash scripts')
def test_dist_train_checks_the_toolkit_once_before_torchrun(tmp_path, no_mmpretrain_env):
    cfg = tmp_path / 'cls.py'
    cfg.write_text(CLS_CONFIG)
    env = tool_env(PYTHON=sys.executable, **no_mmpretrain_env)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(cfg), '2'],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120)
    _one_line_error(proc, 'error:', "default_scope 'mmpretrain'", 'not installed')
    assert 'torch.distributed' not in proc.stdout and 'rank' not in proc.stdout.lower()
