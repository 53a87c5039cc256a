"""DCLSClampHook: positions clamped after every optimizer step, and only then."""
import socket

import pytest
import torch
import torch.distributed as dist
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

from mmdcls.engine import DCLSClampHook
from mmdcls.engine.hooks.clamp_hook import clampable_modules
from .toy_models import ToyConvNeXtDCLS, has_backbone

LIMIT = 5 // 2  # the toy's dilated_kernel_size is 5


class PushOutModel(BaseModel):
    """A ConvNeXt-DCLS whose loss drives every position outwards (so without clamping they
    leave the kernel after one SGD step), optionally under CPU autocast."""

    def __init__(self, backbone, autocast=False):
        super().__init__()
        self.backbone = backbone
        self.autocast = autocast

    def forward(self, inputs, data_samples=None, mode='loss'):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.autocast):
            feats = self.backbone(inputs)
            loss = sum(f.float().mean() for f in feats)
        positions = [p for n, p in self.backbone.named_parameters() if n.endswith('.P')]
        push = sum(-(p * p.sign()).sum() for p in positions)  # d/dP = -sign(P): outwards
        return dict(loss=loss * 0 + push)


class CountingHook(DCLSClampHook):

    def __init__(self):
        super().__init__()
        self.clamped_at = []

    def clamp(self):
        self.clamped_at.append(self._iter)
        super().clamp()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._iter = runner.iter + 1
        super().before_train_iter(runner, batch_idx, data_batch)


def positions(model):
    return [p for n, p in model.named_parameters() if n.endswith('.P')]


def run(tmp_path,
        model,
        hooks,
        max_iters=4,
        accumulative_counts=1,
        lr=10.0,
        wrapper_type='OptimWrapper'):
    dataset = [dict(inputs=torch.randn(3, 32, 32)) for _ in range(8)]
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=dataset,
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            type=wrapper_type,
            optimizer=dict(type='SGD', lr=lr),
            accumulative_counts=accumulative_counts),
        custom_hooks=hooks,
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmengine',
        log_level='WARNING',
        experiment_name=f'clamp_hook_{tmp_path.name}')
    runner.train()
    return runner


def test_positions_leave_the_kernel_without_the_hook(tmp_path):
    """The control: the push-out loss does move positions outside, so the tests below can
    fail."""
    model = PushOutModel(ToyConvNeXtDCLS())
    run(tmp_path, model, hooks=[], max_iters=1)
    assert max(p.abs().max().item() for p in positions(model)) > LIMIT + 1


def test_hook_from_config_clamps_after_every_step(tmp_path):
    model = PushOutModel(ToyConvNeXtDCLS())
    stage2 = model.backbone.stages[2]
    runner = run(tmp_path, model, hooks=[dict(type='mmdcls.DCLSClampHook')], max_iters=3)
    assert any(isinstance(h, DCLSClampHook) for h in runner.hooks)
    for p in positions(model):
        assert p.abs().max().item() == LIMIT  # pushed to the border and held there
    assert stage2[0].dwconv.P is stage2[3].dwconv.P  # still shared


def test_hook_clamps_only_when_the_optimizer_steps(tmp_path):
    """accumulative_counts=3 over 7 iterations: steps at 3, 6 and 7 (the remainder)."""
    hook = CountingHook()
    model = PushOutModel(ToyConvNeXtDCLS())
    run(tmp_path, model, hooks=[hook], max_iters=7, accumulative_counts=3)
    assert hook.clamped_at == [3, 6, 7]
    for p in positions(model):
        assert p.abs().max().item() <= LIMIT


def test_positions_stay_fp32_and_clamped_under_autocast(tmp_path):
    model = PushOutModel(ToyConvNeXtDCLS(), autocast=True)
    run(tmp_path, model, hooks=[dict(type='mmdcls.DCLSClampHook')], max_iters=2)
    for p in positions(model):
        assert p.dtype == torch.float32
        assert p.abs().max().item() == LIMIT


def test_positions_stay_fp32_and_clamped_with_cpu_autocast_optim_wrapper(tmp_path):
    """mmdcls's CPU AMP wrapper (bf16 autocast around the forward) with accumulation."""
    model = PushOutModel(ToyConvNeXtDCLS())
    hook = CountingHook()
    run(tmp_path,
        model,
        hooks=[hook],
        max_iters=4,
        accumulative_counts=2,
        wrapper_type='mmdcls.CPUAutocastOptimWrapper')
    assert hook.clamped_at == [2, 4]
    for p in positions(model):
        assert p.dtype == torch.float32
        assert p.abs().max().item() == LIMIT


@pytest.mark.skipif(not torch.cuda.is_available(), reason='AmpOptimWrapper needs CUDA')
def test_amp_optim_wrapper_on_gpu(tmp_path):
    model = PushOutModel(ToyConvNeXtDCLS()).cuda()
    dataset = [dict(inputs=torch.randn(3, 32, 32)) for _ in range(4)]
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=dataset,
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(type='AmpOptimWrapper', optimizer=dict(type='SGD', lr=10.0)),
        custom_hooks=[dict(type='mmdcls.DCLSClampHook')],
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmengine',
        log_level='WARNING',
        experiment_name=f'clamp_hook_{tmp_path.name}')
    runner.train()
    for p in positions(model):
        assert p.dtype == torch.float32 and p.abs().max().item() == LIMIT


def test_ddp_model_is_unwrapped():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try:
        backbone = ToyConvNeXtDCLS()
        ddp = DistributedDataParallel(PushOutModel(backbone))
        found = dict(clampable_modules(ddp))
        assert found['backbone'] is backbone
        assert found['backbone.stages.2.3.dwconv'] is backbone.stages[2][3].dwconv
        assert not any(name.startswith('module') for name in found)
    finally:
        dist.destroy_process_group()


def test_no_dcls_module_warns(tmp_path, capsys):

    class Plain(BaseModel):

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=self.conv(inputs).mean())

    run(tmp_path, Plain(), hooks=[dict(type='mmdcls.DCLSClampHook')], max_iters=1)
    assert 'has no module with clamp_parameters()' in capsys.readouterr().out


def test_hook_and_constructor_on_a_model_built_from_a_config():
    """Mask R-CNN with the real ConvNeXt-DCLS-T, from the shipped config: one optimizer step
    under the config's recipe pushes the border positions out, the hook brings them back."""
    pytest.importorskip('mmdet')
    if not has_backbone():
        pytest.skip('mmdcls.ConvNeXtDCLS is not registered (backbone not there yet)')
    import os.path as osp
    from types import SimpleNamespace

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(
        osp.join(root, 'configs/convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_ms-crop-3x_coco.py'))
    cfg.model.backbone.pop('init_cfg')
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    hook = DCLSClampHook()
    runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper)
    hook.before_train(runner)
    P = positions(model)
    assert len(P) == 4  # one per stage, shared by its blocks
    limit = 17 // 2
    with torch.no_grad():
        for p in P:
            p.copy_(torch.sign(p) * limit)
    hook.before_train_iter(runner, 0)
    optim_wrapper.update_params(sum(-(p * p.sign()).sum() for p in P))
    assert max(p.abs().max().item() for p in P) > limit  # the step went outside
    hook.after_train_iter(runner, 0)
    for p in P:
        assert p.dtype == torch.float32
        assert p.abs().max().item() == limit


def test_stepped_with_an_optim_wrapper_dict():
    """Several optimizers (OptimWrapperDict): clamp when any of them steps."""
    from types import SimpleNamespace

    from mmengine.optim import OptimWrapper, OptimWrapperDict

    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    wrappers = OptimWrapperDict(
        a=OptimWrapper(torch.optim.SGD(a.parameters(), lr=0.1), accumulative_counts=2),
        b=OptimWrapper(torch.optim.SGD(b.parameters(), lr=0.1), accumulative_counts=3))
    wrappers.initialize_count_status(a, 0, 12)
    hook = DCLSClampHook()
    runner = SimpleNamespace(optim_wrapper=wrappers)
    stepped = []
    for it in range(1, 7):
        hook.before_train_iter(runner, it - 1)
        for name, layer in (('a', a), ('b', b)):
            wrappers[name].update_params(layer(torch.ones(1, 2)).sum())
        stepped.append(hook.stepped(wrappers))
    # a steps at 2, 4, 6; b at 3, 6.
    assert stepped == [False, True, True, True, False, True]
