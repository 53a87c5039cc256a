"""LargeKernelConv{1,2,3}d: nn.Conv modules computed by conv_nd, with what the algorithm
prepares from a constant weight (its FFT spectra) kept while the weight's values are
unchanged."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, ConvProblem, LargeKernelConv2d, LargeKernelDepthwiseConv2d


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize('algo', list(ALGORITHMS) + [None])
@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect', 'circular'])
def test_matches_nn_conv(algo, padding_mode):
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(4, 4, (9, 7), padding=(4, 3), groups=4, padding_mode=padding_mode)
    lk = LargeKernelConv2d(
        4, 4, (9, 7), padding=(4, 3), groups=4, padding_mode=padding_mode, conv_algo=algo)
    lk.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 11, 10, requires_grad=True)
    if algo is not None:
        with torch.enable_grad():
            problem = ConvProblem.describe(x, lk.weight, lk.bias, (1, 1), (0, 0), 4)
        if not ALGORITHMS[algo].applies(problem):
            pytest.skip(f'{algo} does not apply')
    y, ref = lk(x), conv(x)
    assert rel_err(y, ref) < 1e-4
    g = torch.randn_like(ref)
    for a, r in zip(
            torch.autograd.grad(y, (x, lk.weight, lk.bias), g),
            torch.autograd.grad(ref, (x, conv.weight, conv.bias), g)):
        assert rel_err(a, r) < 1e-4


def test_same_padding_and_depthwise_helper():
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(3, 3, (6, 5), padding='same', groups=3)
    lk = LargeKernelConv2d(3, 3, (6, 5), padding='same', groups=3, conv_algo='fft')
    lk.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 9, 9)
    assert rel_err(lk(x), conv(x)) < 1e-4
    dw = LargeKernelDepthwiseConv2d(5, 17, conv_algo='fft')
    assert isinstance(dw, torch.nn.Conv2d) and dw.groups == 5 and dw.padding == (8, 8)
    x = torch.randn(1, 5, 20, 20)
    assert rel_err(dw(x), F.conv2d(x, dw.weight, dw.bias, 1, 8, 1, 5)) < 1e-4
    with pytest.raises(ValueError, match='odd'):
        LargeKernelDepthwiseConv2d(5, 16)
    with pytest.raises(ValueError, match='dilation'):
        LargeKernelConv2d(2, 2, 3, dilation=2)


@pytest.mark.parametrize('algo', ['fft', 'c_fft'])
def test_spectra_kept_while_the_weight_values_are_unchanged(algo):
    torch.manual_seed(6)
    conv = LargeKernelDepthwiseConv2d(8, 17, conv_algo=algo).eval()
    if algo == 'c_fft' and not ALGORITHMS['c_fft'].applies(
            ConvProblem.describe(
                torch.randn(1, 8, 20, 20), conv.weight.detach(), None, (1, 1), (8, 8), 8)):
        pytest.skip('the C library is unavailable')
    prepared = []
    original = ALGORITHMS[algo].prepare

    def counting(kernel, problem):
        prepared.append(problem.spatial)
        return original(kernel, problem)

    ALGORITHMS[algo].prepare = counting
    try:
        x, x_small = torch.randn(1, 8, 20, 20), torch.randn(1, 8, 12, 12)
        with torch.inference_mode():
            assert rel_err(conv(x), F.conv2d(x, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
            conv(x)
            assert len(prepared) == 1  # reused
            conv.weight.data.mul_(2)  # through .data: no autograd record, no version bump
            assert rel_err(conv(x), F.conv2d(x, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
            assert len(prepared) == 2
            y_small = conv(x_small)  # other transform lengths
            assert rel_err(y_small, F.conv2d(x_small, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
            assert len(prepared) == 3
    finally:
        del ALGORITHMS[algo].prepare
    assert list(conv.state_dict()) == ['weight', 'bias']
    conv.train()  # training: gradients reach the weight (nothing kept)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_half_precision_module():
    torch.manual_seed(7)
    conv = LargeKernelDepthwiseConv2d(4, 9).eval()
    x = torch.randn(1, 4, 12, 12)
    ref = conv(x)
    for dtype in (torch.float16, torch.bfloat16):
        half = LargeKernelDepthwiseConv2d(4, 9).to(dtype).eval()
        half.load_state_dict(conv.state_dict())
        with torch.no_grad():
            y = half(x.to(dtype))
        assert y.dtype == dtype and rel_err(y, ref) < 2e-2


def test_a_new_weight_in_a_reused_storage_is_seen():
    """A weight freed and replaced by another one, whose storage may take the same address,
    with other values: each inference answers with the weight it has."""
    torch.manual_seed(8)
    conv = LargeKernelDepthwiseConv2d(4, 9, conv_algo='fft').eval()
    x = torch.randn(1, 4, 12, 12)
    for _ in range(10):
        with torch.no_grad():
            conv(x)
            conv.weight = torch.nn.Parameter(torch.randn_like(conv.weight))
            expected = F.conv2d(x, conv.weight, conv.bias, 1, 4, 1, 4)
            assert rel_err(conv(x), expected) < 1e-4
