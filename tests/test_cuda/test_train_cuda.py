"""Training ConvNeXt-DCLS on CUDA: AMP fp16 with loss scaling through mmengine's
``AmpOptimWrapper``, a bf16 autocast train step against fp32, and the no-synchronisation rule:
once warmed up (the first calls may time the convolution algorithms), a train step (forward,
backward, optimizer step, ``clamp_parameters``) and an eval forward never wait for the GPU."""
import math

import pytest
import torch
import torch.nn.functional as F
from cuda_helpers import DEVICE, requires_cuda, small_convnext, stage_loss

from mmdcls.ops import DclsLayer

pytestmark = requires_cuda


def positions(model):
    """The distinct position tensors of the model's DCLS layers (one per stage, shared)."""
    unique = {}
    for module in model.modules():
        if isinstance(module, DclsLayer):
            unique[id(module.P)] = module.P
    return list(unique.values())


def record_dwconv_dtypes(model):
    """A list that fills with the output dtype of every DCLS layer call."""
    dtypes = []
    for module in model.modules():
        if isinstance(module, DclsLayer):
            module.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    return dtypes


def test_amp_fp16_with_loss_scaling_trains():
    from mmengine.optim import AmpOptimWrapper
    torch.manual_seed(0)
    model = small_convnext(version='v0')
    dtypes = record_dwconv_dtypes(model)
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2), dtype='float16')
    start = [p.detach().clone() for p in positions(model)]
    x = torch.randn(2, 3, 64, 64, device=DEVICE)
    steps, losses = 6, []
    for _ in range(steps):
        with wrapper.optim_context(model):
            loss = stage_loss(model(x))
        wrapper.update_params(loss)
        model.clamp_parameters()
        losses.append(loss.item())
    assert dtypes and set(dtypes) == {torch.float16}  # the DCLS layers ran in fp16
    assert all(math.isfinite(v) for v in losses), losses
    for p in model.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
    moved = [not torch.equal(p, p0) for p, p0 in zip(positions(model), start)]
    assert any(moved), 'no position moved: every step skipped by the loss scaler?'
    for p in positions(model):
        assert p.abs().max().item() <= 9 // 2  # clamped into the 9x9 kernel
    state = wrapper.state_dict()['loss_scaler']
    scale = wrapper.loss_scaler.get_scale()
    # dynamic scaling from 2 ** 16, halved per skipped step, doubled after 2000 good ones
    assert state['scale'] == scale and math.log2(scale).is_integer()
    assert 2.0**(16 - steps) <= scale <= 2.0**16
    assert 0 <= state['_growth_tracker'] <= steps


def test_bf16_autocast_train_step_follows_fp32():
    torch.manual_seed(0)
    model = small_convnext(version='gauss')
    x = torch.randn(2, 3, 64, 64, device=DEVICE)
    loss32 = stage_loss(model(x))
    loss32.backward()
    grads32 = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    dtypes = record_dwconv_dtypes(model)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = stage_loss(model(x))
    loss.backward()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert abs(loss.item() - loss32.item()) <= 0.02 * abs(loss32.item())
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name
    for name in ('P', 'SIG', 'weight'):  # the DCLS parameters of every stage together
        grads = [(p.grad, grads32[n]) for n, p in model.named_parameters()
                 if n.endswith(f'dwconv.{name}')]
        ours, reference = (torch.cat([g[i].flatten() for g in grads]) for i in (0, 1))
        assert reference.abs().max() > 0, name
        assert F.cosine_similarity(ours, reference, dim=0) > 0.99, name


@pytest.mark.parametrize('dtype', [None, torch.bfloat16], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('depthwise', ['v0', 'gauss', '7x7'])
def test_train_step_and_eval_forward_never_synchronise(depthwise, dtype):
    """``'7x7'`` (plain ``nn.Conv2d``, no DCLS layer) is the control: if it fails, what
    synchronises is outside mmdcls (torch, the optimizer)."""
    torch.manual_seed(0)
    model = (
        small_convnext(dwconv_cfg=dict(type='Conv2d', kernel_size=7))
        if depthwise == '7x7' else small_convnext(version=depthwise))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(2, 3, 64, 64, device=DEVICE)

    def autocast():
        return torch.autocast(DEVICE, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def train_step():
        model.train()
        with autocast():
            loss = stage_loss(model(x))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.clamp_parameters()

    def eval_forward():
        model.eval()
        with torch.no_grad(), autocast():
            return model(x)

    train_step()  # warm-up: the first calls may time the algorithms (and synchronise)
    eval_forward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        train_step()
        outs = eval_forward()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert all(torch.isfinite(o).all() for o in outs)
