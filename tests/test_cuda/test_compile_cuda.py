"""``torch.compile(..., fullgraph=True)`` on CUDA: every DCLS layer class and ``ConvNeXtDCLS``
trace without a graph break, in train and eval mode, compiled before any eager call and again
after one (which chooses the convolution algorithm and, in eval mode, caches the kernel), and
match eager mode. The layers compile with the ``aot_eager`` backend (dynamo and AOTAutograd:
what decides whether a graph breaks; fast), the network with ``inductor`` (code generation)."""
import pytest
import torch
from cuda_helpers import full_fp32  # noqa: F401 (fixture)
from cuda_helpers import DEVICE, assert_close, requires_cuda, small_convnext

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d, LargeKernelConv2d

pytestmark = [requires_cuda, pytest.mark.usefixtures('full_fp32')]

# name -> (class, input shape, arguments besides the channels); depthwise unless the arguments
# say otherwise; between them every version of the interpolation
LAYERS = {
    'Dcls1d-v1':
    (Dcls1d, (2, 8, 32), dict(kernel_count=5, dilated_kernel_size=9, padding=4, version='v1')),
    'Dcls2d-v0': (Dcls2d, (2, 16, 24, 24),
                  dict(kernel_count=6, dilated_kernel_size=17, padding=8, version='v0')),
    'Dcls2d-gauss': (Dcls2d, (2, 16, 20, 20),
                     dict(kernel_count=5, dilated_kernel_size=11, padding=5, version='gauss')),
    'Dcls2d-max-dense': (Dcls2d, (2, 4, 12, 12),
                         dict(
                             out_channels=6,
                             groups=1,
                             kernel_count=4,
                             dilated_kernel_size=5,
                             padding=2,
                             version='max')),
    'Dcls3d-v0':
    (Dcls3d, (1, 4, 6, 7, 8), dict(kernel_count=4, dilated_kernel_size=5, padding=2, version='v0')),
    'Dcls2dK1d': (Dcls2dK1d, (2, 8, 16, 16),
                  dict(kernel_count=4, dilated_kernel_size=9, padding=(4, 0))),
    'Dcls3_1d':
    (Dcls3_1d, (1, 4, 5, 6, 12),
     dict(kernel_count=3, dense_kernel_size=3, dilated_kernel_size=7, padding=(1, 1, 3))),
    'LargeKernelConv2d': (LargeKernelConv2d, (2, 16, 20, 20), dict(kernel_size=13, padding=6)),
}
TOL = 1e-4  # compiled against eager, fp32 (the graph may fuse and reorder)


def call(module, x, mode):
    """(outputs, gradients of the input and of every parameter) of one call: in train mode a
    forward and backward of a fixed weighting of the output; in eval mode under no_grad."""
    if mode == 'eval':
        module.eval()
        with torch.no_grad():
            y = module(x)
        return [y], []
    module.train()
    x = x.detach().clone().requires_grad_()
    y = module(x)
    torch.manual_seed(1)
    outs = y if isinstance(y, tuple) else (y, )
    # drawn in the logical order (randn_like would follow a channels-last output's memory)
    sum((o * torch.randn(o.shape, dtype=o.dtype, device=o.device)).sum() for o in outs).backward()
    params = [p for p in module.parameters() if p.grad is not None]
    grads = [x.grad] + [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return list(outs), grads


def assert_matches(compiled, eager, what):
    (outs, grads), (outs_ref, grads_ref) = compiled, eager
    assert len(outs) == len(outs_ref) and len(grads) == len(grads_ref), what
    for i, (a, b) in enumerate(zip(outs + grads, outs_ref + grads_ref)):
        assert_close(a, b, f'{what}: {"output" if i < len(outs) else "gradient"} {i}', TOL)


def check_compiled_against_eager(module, x, mode, backend):
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend=backend)
    before = call(compiled, x, mode)  # compiled before any eager call
    eager = call(module, x, mode)
    after = call(compiled, x, mode)  # after it (algorithm chosen, kernel cached in eval)
    cached = call(module, x, mode)  # eager again (eval: the cached kernel)
    assert_matches(before, eager, f'{mode}, compiled before an eager call')
    assert_matches(after, eager, f'{mode}, compiled after an eager call')
    assert_matches(cached, eager, f'{mode}, eager again')


@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('name', LAYERS)
def test_layer_compiles_whole_and_matches_eager(name, mode):
    cls, shape, kwargs = LAYERS[name]
    kwargs = dict(kwargs)
    channels = shape[1]
    torch.manual_seed(0)
    layer = cls(
        in_channels=channels,
        out_channels=kwargs.pop('out_channels', channels),
        groups=kwargs.pop('groups', channels),
        **kwargs).to(DEVICE)
    x = torch.randn(shape, device=DEVICE)
    check_compiled_against_eager(layer, x, mode, 'aot_eager')


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_convnext_dcls_compiles_whole_and_matches_eager(mode):
    torch.manual_seed(0)
    model = small_convnext(version='v0')
    x = torch.randn(2, 3, 64, 64, device=DEVICE)
    check_compiled_against_eager(model, x, mode, 'inductor')
