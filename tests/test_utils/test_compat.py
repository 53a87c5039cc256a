"""Weights-only loading of mmengine and release checkpoints on every admitted torch.

``register_safe_globals`` (torch >= 2.6, where ``torch.load`` is weights-only by default) and
``load_weights_only`` (every torch: torch's own weights-only unpickler from 2.6, mmdcls's
restricted unpickler before it) must load what mmengine writes and refuse everything else."""
import argparse
import datetime
import io
import pickle
import subprocess
import sys
import textwrap
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub

from mmdcls.models.utils import load_checkpoint_file
from mmdcls.utils.compat import (TORCH_ALLOW_LIST, load_weights_only, register_safe_globals,
                                 safe_globals_list)

needs_allow_list = pytest.mark.skipif(
    not TORCH_ALLOW_LIST,
    reason=f'torch {torch.__version__} < 2.6: torch.load is not '
    'weights-only by default and add_safe_globals takes no (object, name) pairs; mmdcls loads '
    'through load_weights_only there (tested below on every torch)')


def _mmengine_style_checkpoint():
    """What ``Runner.save_checkpoint`` writes, minus the model: HistoryBuffers, numpy scalars
    and arrays, OrderedDicts."""
    hub = MessageHub('test_compat_checkpoint')
    for i in range(3):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
        hub.update_scalar('train/lr', np.float32(0.01))
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('iter', 3)
    return {
        'meta':
        dict(
            epoch=1,
            iter=3,
            seed=0,
            cfg='model = dict()',
            scores=np.array([0.5, 0.25], dtype=np.float32),
            count=np.int64(7)),
        'state_dict':
        OrderedDict(weight=torch.arange(4.0)),
        'message_hub':
        hub.state_dict(),
    }


def _check_loaded(ckpt):
    log_scalars = ckpt['message_hub']['log_scalars']
    assert isinstance(log_scalars['train/loss'], HistoryBuffer)
    np.testing.assert_allclose(log_scalars['train/loss'].data[0], [1.0, 0.5, 1.0 / 3])
    assert log_scalars['train/loss'].mean() == pytest.approx((1.0 + 0.5 + 1.0 / 3) / 3)
    assert log_scalars['train/lr'].current() == pytest.approx(0.01)
    assert ckpt['message_hub']['runtime_info']['eta'] == 12.5
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.float64)
    np.testing.assert_array_equal(ckpt['meta']['scores'], np.array([0.5, 0.25], np.float32))
    assert ckpt['meta']['count'] == 7
    torch.testing.assert_close(ckpt['state_dict']['weight'], torch.arange(4.0))


@needs_allow_list
def test_without_registration_torch_load_refuses(tmp_path):
    """Documents the incompatibility: a fresh interpreter without mmdcls cannot load it."""
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_style_checkpoint(), path)
    code = f"""
        import pickle, sys, torch
        assert 'mmdcls' not in sys.modules
        try:
            torch.load({str(path)!r})
        except pickle.UnpicklingError as e:
            print('REFUSED', e)
        else:
            print('LOADED')
        """
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('REFUSED'), result.stdout
    assert 'Unsupported global' in result.stdout, result.stdout


@needs_allow_list
def test_registered_types_load_with_weights_only(tmp_path):
    register_safe_globals()
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_style_checkpoint(), path)
    _check_loaded(torch.load(path))  # default weights_only=True
    _check_loaded(torch.load(path, weights_only=True))


@needs_allow_list
def test_registration_is_idempotent():
    register_safe_globals()
    assert register_safe_globals() is False
    registered = torch.serialization.get_safe_globals()
    for entry in safe_globals_list():
        assert sum(1 for r in registered if r == entry) == 1, entry


def test_load_weights_only_loads_mmengine_checkpoints_on_every_torch(tmp_path):
    """The loader mmdcls uses for the files it opens itself, without any process-wide
    registration: zip and legacy formats."""
    checkpoint = _mmengine_style_checkpoint()
    checkpoint['args'] = argparse.Namespace(model='convnext_dcls_tiny', input_size=224)
    for legacy in (False, True):
        path = tmp_path / f'ckpt_{legacy}.pth'
        torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
        loaded = load_weights_only(path)
        _check_loaded(loaded)
        assert loaded['args'].model == 'convnext_dcls_tiny' and loaded['args'].input_size == 224


def test_register_steps_aside_before_torch_2_6():
    if TORCH_ALLOW_LIST:
        pytest.skip('torch >= 2.6 registers (test_registration_is_idempotent)')
    assert register_safe_globals() is False
    assert not hasattr(torch.serialization, 'get_safe_globals') or not any(
        entry in torch.serialization.get_safe_globals()
        for entry in safe_globals_list() if not isinstance(entry, tuple))


class _RunsCode:
    """What a malicious checkpoint pickles: a call of an arbitrary function on load."""

    def __reduce__(self):
        return (print, ('unpickling ran code', ))


# the refused global as the error names it (newer torch drops the ``builtins.`` of builtins)
@pytest.mark.parametrize('payload, global_name', [
    (_RunsCode(), r'(builtins\.)?print'),
    (argparse.ArgumentParser, r'argparse\.ArgumentParser'),
    (datetime.date(2024, 1, 1), r'datetime\.date'),
])
def test_load_weights_only_refuses_other_globals(tmp_path, capsys, payload, global_name):
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError, match=f'Unsupported global: GLOBAL {global_name}'):
        load_weights_only(path)
    assert 'unpickling ran code' not in capsys.readouterr().out


def test_load_checkpoint_file_refuses_arbitrary_objects_with_a_clear_error(tmp_path, capsys):
    """mmdcls's own checkpoint loading (init_cfg Pretrained, load_pretrained) on every torch."""
    path = tmp_path / 'release.pth'
    torch.save({'model': {'w': torch.ones(2)}, 'args': argparse.Namespace(lr=4e-3)}, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['args'].lr == 4e-3
    torch.testing.assert_close(loaded['model']['w'], torch.ones(2))

    torch.save({'model': {'w': torch.ones(2)}, 'hook': _RunsCode()}, path)
    with pytest.raises(
            RuntimeError,
            match=r'refuses to unpickle an object outside the allowed '
            r"types \['Namespace'\][\s\S]*Unsupported global: GLOBAL "
            r'(builtins\.)?print'):
        load_checkpoint_file(str(path))
    assert 'unpickling ran code' not in capsys.readouterr().out


class _Gadget:

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return getattr, (self.target, self.name)


@pytest.mark.parametrize('target, name', [
    (HistoryBuffer, 'update'),
    (HistoryBuffer, '__init__'),
    (np.ndarray, 'tofile'),
])
def test_getattr_is_restricted_to_history_buffer_statistics(target, name):
    register_safe_globals()
    buffer = io.BytesIO()
    torch.save({'x': _Gadget(target, name)}, buffer)
    for load in _weights_only_loads():
        buffer.seek(0)
        with pytest.raises(pickle.UnpicklingError, match='getattr'):
            load(buffer)


def test_getattr_of_history_buffer_statistics_is_allowed():
    register_safe_globals()
    buffer = io.BytesIO()
    torch.save({'m': _Gadget(HistoryBuffer, 'mean')}, buffer)
    for load in _weights_only_loads():
        buffer.seek(0)
        assert load(buffer)['m'] is HistoryBuffer.mean


def _weights_only_loads():
    """mmdcls's loader on every torch; torch's default load too where it is weights-only."""
    return [load_weights_only, torch.load] if TORCH_ALLOW_LIST else [load_weights_only]


@pytest.mark.parametrize('spelling', [b'numpy.core.multiarray', b'numpy._core.multiarray'])
def test_either_numpy_checkpoint_spelling_loads(spelling):
    """numpy 1.x wrote ``numpy.core.multiarray`` (model-zoo checkpoints still carry it), numpy 2
    ``numpy._core.multiarray``: both load, whichever numpy is installed."""
    register_safe_globals()
    buffer = io.BytesIO()
    torch.save({
        'a': np.arange(3, dtype=np.int64),
        's': np.float64(2.5)
    },
               buffer,
               _use_new_zipfile_serialization=False)  # legacy format: one plain pickle stream
    raw = buffer.getvalue()
    numpy_2 = int(np.__version__.split('.')[0]) >= 2
    own = b'numpy._core.multiarray' if numpy_2 else b'numpy.core.multiarray'
    assert own in raw
    for load in _weights_only_loads():
        loaded = load(io.BytesIO(raw.replace(own, spelling)))
        np.testing.assert_array_equal(loaded['a'], np.arange(3))
        assert loaded['s'] == 2.5


def test_released_checkpoint_with_args_namespace_loads_through_mmengine(tmp_path):
    """ConvNeXt-dcls release files keep the training ``args`` next to ``model``."""
    from mmengine.runner.checkpoint import _load_checkpoint
    register_safe_globals()
    path = tmp_path / 'release.pth'
    torch.save(
        {
            'model': {
                'head.weight': torch.ones(2, 2)
            },
            'args':
            argparse.Namespace(
                model='convnext_dcls_tiny',
                lr=4e-3,
                drop_path=0.1,
                input_size=224,
                use_amp=False,
                resume='')
        }, path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['args'].model == 'convnext_dcls_tiny' and ckpt['args'].input_size == 224
    torch.testing.assert_close(ckpt['model']['head.weight'], torch.ones(2, 2))


class _ToyModel(nn.Module):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class _ToyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


def _runner(work_dir, max_epochs, resume):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.body = _ToyModel()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.body(inputs, data_samples, mode)

    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{max_epochs}_{int(resume)}',
        train_dataloader=dict(
            dataset=_ToyDataset(),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
            dict(type='MultiStepLR', milestones=[1], by_epoch=True)
        ],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        randomness=dict(seed=0),
        default_scope='mmengine')


def test_runner_resumes_its_own_checkpoint(tmp_path):
    register_safe_globals()
    _runner(tmp_path, max_epochs=1, resume=False).train()
    assert (tmp_path / 'epoch_1.pth').exists()
    runner = _runner(tmp_path, max_epochs=2, resume=True)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 4
    assert (tmp_path / 'epoch_2.pth').exists()
    resumed = torch.load(tmp_path / 'epoch_2.pth')
    assert resumed['meta']['epoch'] == 2
    assert isinstance(resumed['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
