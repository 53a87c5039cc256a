"""What the CUDA tests share (imported by the test modules: a conftest.py here would shadow
tests/test_tools/conftest.py, which is imported by name): the skip mark, full fp32 precision on
CUDA, the scale-relative comparison and a small ConvNeXt-DCLS."""
import pytest
import torch

from mmdcls.models import ConvNeXtDCLS
from mmdcls.utils.profiling import spread_positions

NO_CUDA = 'needs a CUDA device (torch.cuda.is_available() is False)'
#: every test module here: skipped, with the reason, where torch sees no CUDA device
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)

DEVICE = 'cuda'
#: ConvNeXt-T's layout, narrow and shallow: every kind of block, a second block in stage 3 (its
#: positions shared, as released)
SMALL_ARCH = dict(depths=[1, 1, 2, 1], channels=[16, 32, 32, 32], kernel_count=8)


def small_convnext(**kwargs) -> ConvNeXtDCLS:
    """A small ConvNeXt-DCLS on the GPU, positions spread over the 9x9 kernels as in trained
    checkpoints; raw stage outputs (no output norms, whose per-pixel normalisation makes simple
    losses flat) and layer scale 1 (not 1e-6), so that the depthwise layers get gradients of
    ordinary size. ``kwargs``: ConvNeXtDCLS's (e.g. ``version``, ``dwconv_cfg``)."""
    if 'dwconv_cfg' not in kwargs:
        kwargs.setdefault('dilated_kernel_size', 9)
    model = ConvNeXtDCLS(arch=SMALL_ARCH, out_norms=False, layer_scale_init_value=1.0, **kwargs)
    spread_positions(model)
    return model.to(DEVICE)


def stage_loss(outs) -> torch.Tensor:
    """A loss with a gradient everywhere: the sum of the mean squares of the stage outputs."""
    return sum(o.float().square().mean() for o in outs)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (elementwise-relative errors are meaningless
    where contributions cancel)."""
    expected = expected.detach().double()
    scale = expected.abs().max().clamp_min(1e-12)
    return ((actual.detach().double() - expected).abs().max() / scale).item()


def assert_close(actual, expected, name: str, tol: float) -> None:
    assert actual.shape == expected.shape, f'{name}: shape {actual.shape} != {expected.shape}'
    err = rel_err(actual, expected)
    assert err <= tol, f'{name}: max error {err:.2e} of the reference scale > {tol:.0e}'


@pytest.fixture
def full_fp32():
    """cuDNN convolutions and CUDA matmuls in full fp32 during the test (no TF32, which cuDNN
    uses for fp32 convolutions by default on Ampere and later: 10-bit mantissas)."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
