"""Hooks that change DCLS parameters behind autograd's back (``p.data.copy_`` /
``p.data.mul_().add_()``, no version bump): the eval-mode kernel cache still answers with the
current values. mmengine's EMAHook in a Runner (EMA weights swapped in for validation, swapped
back after) and mmdet's MeanTeacherHook (the teacher updated from the student)."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner

from .toy_models import ToyConvNeXtDCLS


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = ToyConvNeXtDCLS()

    def forward(self, inputs, data_samples=None, mode='loss'):
        feats = self.backbone(inputs)
        if mode == 'loss':
            return dict(loss=sum(f.square().mean() for f in feats))
        return [f.mean() for f in feats]


class MeanMetric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.append(float(sum(data_samples)))

    def compute_metrics(self, results):
        return dict(mean=sum(results) / len(results))


def fresh(module, x):
    """The outputs of a copy of ``module`` (no cached kernels) in eval mode."""
    with torch.no_grad():
        return copy.deepcopy(module).eval()(x)


def test_ema_hook_swap_back_is_seen(tmp_path):
    """Validation at the last iteration runs the EMA weights (cached kernels built from them);
    after EMAHook swaps the live weights back, an eval forward uses the live weights."""
    torch.manual_seed(0)
    model = ToyModel()
    dataset = [dict(inputs=torch.randn(3, 32, 32)) for _ in range(4)]
    loader = dict(
        dataset=dataset,
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=[MeanMetric()],
        train_cfg=dict(by_epoch=False, max_iters=3, val_interval=3),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        custom_hooks=[dict(type='EMAHook', momentum=0.5)],
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmengine',
        log_level='WARNING',
        experiment_name=f'ema_{tmp_path.name}')
    runner.train()
    ema = runner.model if not hasattr(runner.model, 'module') else runner.model.module
    assert ema is model
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        ours = model.backbone(x)
    for a, b in zip(ours, fresh(model.backbone, x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_mean_teacher_update_is_seen():
    pytest.importorskip('mmdet')
    from mmdet.engine.hooks import MeanTeacherHook
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.student, model.teacher = ToyConvNeXtDCLS(), ToyConvNeXtDCLS()
    runner = SimpleNamespace(model=model, iter=0)
    hook = MeanTeacherHook(momentum=0.5)
    hook.before_train(runner)  # teacher = student
    x = torch.randn(2, 3, 32, 32)
    model.teacher.eval()
    previous = None
    for _ in range(3):
        with torch.no_grad():
            pseudo = model.teacher(x)  # pseudo-labelling pass (kernels cached)
        for a, b in zip(pseudo, fresh(model.teacher, x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        if previous is not None:  # the teacher did move
            assert not torch.allclose(previous[-1], pseudo[-1], rtol=1e-3, atol=1e-3)
        previous = pseudo
        with torch.no_grad():  # a student training step
            for p in model.student.parameters():
                p.add_(0.2 * torch.randn_like(p))
        hook.after_train_iter(runner, 0)  # teacher.data.mul_(0.5).add_(student.data, 0.5)
