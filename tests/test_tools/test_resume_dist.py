"""--resume continues exactly (positions, optimizer state, lr schedule) and a 2-process
torchrun (gloo, CPU) run with gradient checkpointing and shared positions keeps every rank's
parameters identical."""
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SEG_CONFIG, run_tool, seg_data_options, tool_env

from mmdcls.utils.compat import register_safe_globals


def _load(path):
    """weights_only load of an mmengine checkpoint, with the allow-list ``import mmdcls``
    registers (re-registered here: another test of the session may have reset it)."""
    register_safe_globals()
    return torch.load(path, map_location='cpu', weights_only=True)


# Deterministic short runs: no dropout, no validation.
DETERMINISTIC = [
    'model.decode_head.dropout_ratio=0.0', 'model.auxiliary_head.dropout_ratio=0.0',
    'train_cfg.val_interval=1000', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=3', 'default_hooks.checkpoint.max_keep_ckpts=-1'
]


def _train(tiny_data, work_dir, max_iters, *extra):
    return run_tool([
        'tools/train.py', SEG_CONFIG, '--work-dir', work_dir, *extra, '--cfg-options',
        *seg_data_options(tiny_data), *DETERMINISTIC, f'train_cfg.max_iters={max_iters}'
    ])


def _assert_same_tree(a, b, where):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.shape == b.shape and torch.allclose(
            a.float(), b.float(), atol=1e-6, rtol=1e-5), where
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {sorted(set(a) ^ set(b))}'
        for k in a:
            _assert_same_tree(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def test_resume_continues_identically(tiny_data, tmp_path):
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    _train(tiny_data, straight, 6)
    _train(tiny_data, resumed, 3)
    assert (resumed / 'iter_3.pth').is_file()
    # --resume without a path: the latest checkpoint of the work dir (iter_3)
    proc = _train(tiny_data, resumed, 6, '--resume')
    assert 'resumed' in proc.stdout.lower() or 'Advance dataloader 3 steps' in proc.stdout

    a = _load(straight / 'iter_6.pth')
    b = _load(resumed / 'iter_6.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    positions = [k for k in a['state_dict'] if k.endswith('dwconv.P')]
    assert positions, 'no DCLS positions in the checkpoint'
    ckpt3 = _load(resumed / 'iter_3.pth')
    # the positions did move between iteration 3 and 6, so equality below is not trivial
    assert any(not torch.equal(ckpt3['state_dict'][k], b['state_dict'][k]) for k in positions)
    _assert_same_tree(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_same_tree(a['optimizer'], b['optimizer'], 'optimizer')
    _assert_same_tree(a['param_schedulers'], b['param_schedulers'], 'param_schedulers')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_identical_parameters(tiny_data, tmp_path):
    work = tmp_path / 'dist'
    env = tool_env()
    env.update(
        PORT=str(_free_port()),
        PYTHON=sys.executable,
        PYTHONPATH=osp.join(REPO, 'tests', 'test_tools'))
    # custom_imports is applied when the config file is read: the helper hook needs a file.
    config = tmp_path / 'dist_cfg.py'
    config.write_text(
        f"_base_ = {SEG_CONFIG!r}\n"
        "custom_imports = dict(imports=['mmdcls', '_dist_helpers'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='mmdcls.DCLSClampHook'), dict(type='DumpRankParamsHook')]\n")
    cmd = [
        'bash', 'tools/dist_train.sh',
        str(config), '2', '--work-dir',
        str(work), '--cfg-options', *seg_data_options(tiny_data), 'train_cfg.max_iters=3',
        'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=3',
        'model.backbone.with_cp=True', 'model.backbone.share_positions=True',
        'train_dataloader.batch_size=2'
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=400)
    if proc.returncode != 0:
        pytest.fail(f'dist_train.sh failed ({proc.returncode}):\n{proc.stdout[-5000:]}')
    assert 'gloo' in proc.stdout  # no CUDA: nccl -> gloo
    ranks = [_load(work / f'params_rank{r}.pth') for r in (0, 1)]
    init = _load(work / 'iter_3.pth')['state_dict']
    assert set(ranks[0]) == set(ranks[1])
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f'{name} differs between ranks'
    # one shared P per stage survived the DDP wrapping
    assert ranks[0]['__shared_P_ids__'].tolist() == [1, 1, 1, 1]
    # and the run trained: the saved positions equal the ranks' final ones
    for name, value in ranks[0].items():
        if name.endswith('dwconv.P'):
            assert torch.equal(init[name], value)
