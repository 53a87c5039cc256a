"""An empty batch (or empty maps): F.conv's empty output and backward (zero kernel and bias
gradients), whatever the request; nothing reaches an algorithm (conv_nd answers itself)."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, algo_choices, conv_nd


@pytest.mark.parametrize('algo', algo_choices())
@pytest.mark.parametrize('depthwise', [True, False])
def test_every_request_takes_an_empty_batch(monkeypatch, algo, depthwise):
    for algorithm in ALGORITHMS.values():
        monkeypatch.setattr(algorithm, 'run', None)  # never called
    groups = 4 if depthwise else 1
    x = torch.randn(0, 4, 20, 20, requires_grad=True)
    kernel = torch.randn(4, 4 // groups, 17, 17, requires_grad=True)
    bias = torch.randn(4, requires_grad=True)
    y = conv_nd(x, kernel, bias, (1, 1), (8, 8), groups, algo=algo)
    assert y.shape == F.conv2d(x, kernel, bias, 1, 8, 1, groups).shape == (0, 4, 20, 20)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(kernel.grad, torch.zeros_like(kernel))
    assert torch.equal(bias.grad, torch.zeros_like(bias))
    with torch.no_grad():
        assert conv_nd(x, kernel, bias, (1, 1), (8, 8), groups, algo=algo).shape == y.shape
