"""torch.load(weights_only=True) of mmengine checkpoints after ``register_safe_globals``."""
import argparse
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

from mmdcls.utils.compat import register_safe_globals, safe_globals_list


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
        'meta': dict(epoch=1, iter=3, seed=0, cfg='model = dict()',
                     scores=np.array([0.5, 0.25], dtype=np.float32), count=np.int64(7)),
        'state_dict': OrderedDict(weight=torch.arange(4.0)),
        'message_hub': hub.state_dict(),
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
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('REFUSED'), result.stdout
    assert 'Unsupported global' in result.stdout, result.stdout


def test_registered_types_load_with_weights_only(tmp_path):
    register_safe_globals()
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_style_checkpoint(), path)
    _check_loaded(torch.load(path))  # default weights_only=True
    _check_loaded(torch.load(path, weights_only=True))


def test_registration_is_idempotent():
    register_safe_globals()
    assert register_safe_globals() is False
    registered = torch.serialization.get_safe_globals()
    for entry in safe_globals_list():
        assert sum(1 for r in registered if r == entry) == 1, entry


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
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(buffer)


def test_getattr_of_history_buffer_statistics_is_allowed():
    register_safe_globals()
    buffer = io.BytesIO()
    torch.save({'m': _Gadget(HistoryBuffer, 'mean')}, buffer)
    buffer.seek(0)
    assert torch.load(buffer)['m'] is HistoryBuffer.mean


def test_numpy_1_checkpoint_spelling_loads():
    """numpy 1.x wrote ``numpy.core.multiarray``; model-zoo checkpoints still carry it."""
    register_safe_globals()
    buffer = io.BytesIO()
    torch.save({'a': np.arange(3, dtype=np.int64), 's': np.float64(2.5)}, buffer,
               _use_new_zipfile_serialization=False)  # legacy format: one plain pickle stream
    raw = buffer.getvalue()
    assert b'numpy._core.multiarray' in raw
    legacy = raw.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    loaded = torch.load(io.BytesIO(legacy))
    np.testing.assert_array_equal(loaded['a'], np.arange(3))
    assert loaded['s'] == 2.5


def test_released_checkpoint_with_args_namespace_loads_through_mmengine(tmp_path):
    """ConvNeXt-dcls release files keep the training ``args`` next to ``model``."""
    from mmengine.runner.checkpoint import _load_checkpoint
    register_safe_globals()
    path = tmp_path / 'release.pth'
    torch.save({'model': {'head.weight': torch.ones(2, 2)},
                'args': argparse.Namespace(model='convnext_dcls_tiny', lr=4e-3, drop_path=0.1,
                                           input_size=224, use_amp=False, resume='')}, path)
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
        return dict(inputs=torch.full((2,), float(index)))


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
        model=Toy(), work_dir=str(work_dir),
        experiment_name=f'toy_{max_epochs}_{int(resume)}',
        train_dataloader=dict(dataset=_ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
                         dict(type='MultiStepLR', milestones=[1], by_epoch=True)],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume, randomness=dict(seed=0), default_scope='mmengine')


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
