"""Fixtures of the tool tests: the tiny datasets (generated once per session into a temporary
folder), a runner for the command-line tools (single-threaded subprocesses, so a tool runs
exactly as a user runs it) and :func:`load_tool`, which imports a tool script by its path.

The scripts under ``tools/`` are not a package and are never put on ``sys.path`` (their names,
``train`` / ``test``, would shadow other modules): a test that calls a tool's functions loads it
with ``load_tool('tools/analysis/get_flops.py').analyze``.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(REPO, 'configs/_demo_/mask-rcnn_convnext-dcls-demo_fpn_tiny-coco.py')
SEG_CONFIG = osp.join(REPO, 'configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py')
_LOADED_TOOLS = {}


def load_tool(path: str):
    """The module of the tool script ``path`` (relative to the repository root, e.g.
    ``'tools/train.py'``), imported once per session by its file path under a name of its own
    (``mmdcls_tools.<dir>.<name>``), so nothing is added to ``sys.path``."""
    full = osp.join(REPO, path)
    if full not in _LOADED_TOOLS:
        if not osp.isfile(full):
            raise FileNotFoundError(f'no tool script {path} in {REPO}')
        name = 'mmdcls_tools.' + osp.splitext(osp.relpath(full, osp.join(REPO, 'tools')))[0] \
            .replace(os.sep, '.')
        spec = importlib.util.spec_from_file_location(name, full)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as an import would (dataclasses, pickling look it up)
        spec.loader.exec_module(module)
        _LOADED_TOOLS[full] = module
    return _LOADED_TOOLS[full]


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """``{'coco': path, 'ade': path, 'textures': path}`` of freshly generated tiny datasets
    (seed 0)."""
    make_all = load_tool('tools/misc/make_tiny_datasets.py').make_all
    root = tmp_path_factory.mktemp('data')
    make_all(str(root), seed=0)
    return dict(
        coco=str(root / 'tiny_coco'),
        ade=str(root / 'tiny_ade'),
        textures=str(root / 'tiny_textures'))


def det_data_options(tiny_data, train_images=8, val_images=4):
    """``--cfg-options`` pointing the detection demo config at ``tiny_data`` and subsets."""
    root = tiny_data['coco'] + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.indices={train_images}',
        f'val_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.indices={val_images}',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.indices={val_images}',
        f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
        f'test_evaluator.ann_file={root}annotations/instances_val2017.json'
    ]


def seg_data_options(tiny_data, val_images=4):
    root = tiny_data['ade']
    return [
        f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.indices={val_images}', f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.indices={val_images}'
    ]


def tool_env(**extra):
    """The environment of a tool run: single-threaded, and this checkout's ``mmdcls`` first on
    ``PYTHONPATH`` (a script's own folder is ``sys.path[0]``, so an installed mmdcls, e.g. an
    editable install of another checkout, would otherwise be the one tested)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore', **extra)
    paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join([REPO] + paths)
    return env


def run_tool(args, timeout=300, check=True, cwd=REPO, env=None):
    """Runs ``python <args>`` from the repository root; returns the CompletedProcess (stdout
    and stderr merged into ``.stdout``). ``check``: fail the test, showing the output's tail,
    on a non-zero exit. ``env``: variables added to :func:`tool_env`'s."""
    proc = subprocess.run(
        [sys.executable] + [str(a) for a in args],
        cwd=cwd,
        env=tool_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{args[0]} exited with {proc.returncode}:\n{proc.stdout[-4000:]}')
    return proc
