"""torch.compile(fullgraph=True) of the whole ConvNeXtDCLS: one graph (no host read, no C call,
no data-dependent branch in a DCLS forward or backward), in train and eval mode, before and
after an eager call, with the eager outputs and gradients (the aot_eager backend: dynamo and
AOT autograd as in any backend; inductor's code generation is tested on one layer in
tests/test_ops/test_dcls.py)."""
import pytest
import torch

from mmdcls.models import ConvNeXtDCLS
from mmdcls.ops.torch_compat import DYNAMO_TRACES_OPS

pytestmark = pytest.mark.skipif(
    not DYNAMO_TRACES_OPS, reason='torch.compile traces the DCLS layers from torch 2.4')


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def run(model, x, train):
    """Outputs and, in train mode, the input's and every parameter's gradient."""
    model.zero_grad()
    x = x.clone().requires_grad_(train)
    with torch.set_grad_enabled(train):
        outs = model(x)
    if not train:
        return list(outs)
    sum(o.square().mean() for o in outs).backward()
    return list(outs) + [x.grad] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize('version,size,count', [('v0', 7, 5), ('gauss', 9, 4)])
@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('order', ['compiled_first', 'eager_first'])
def test_fullgraph_matches_eager(small_arch, version, size, count, mode, order):
    torch.manual_seed(0)
    model = ConvNeXtDCLS(
        arch=small_arch,
        dilated_kernel_size=size,
        kernel_count=count,
        version=version,
        layer_scale_init_value=1.0).train(mode == 'train')
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    if order == 'eager_first':
        eager = run(model, x, mode == 'train')
        ours = run(compiled, x, mode == 'train')
    else:
        ours = run(compiled, x, mode == 'train')
        eager = run(model, x, mode == 'train')
    for a, b in zip(ours, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
