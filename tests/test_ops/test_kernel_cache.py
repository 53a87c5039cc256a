"""The eval-mode kernel cache of the DCLS layers (mmdcls/ops/kernel_cache.py): reused while the
parameters hold the same values and no gradient is needed; rebuilt after every kind of change,
including those that bypass autograd's version counters (writes through ``.data`` or
``.numpy()``, fused optimizers). mmengine's EMAHook and mmdet's MeanTeacherHook:
tests/test_engine/test_weight_swapping_hooks.py."""
import copy
import io

import pytest
import torch

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d

LAYERS = {
    'Dcls2d-v0':
    (lambda: Dcls2d(8, 8, 5, dilated_kernel_size=17, padding=8, groups=8, version='v0'), (12, 12)),
    'Dcls2d-gauss':
    (lambda: Dcls2d(4, 6, 5, dilated_kernel_size=(7, 5), padding=(3, 2), version='gauss'), (9, 8)),
    'Dcls1d': (lambda: Dcls1d(4, 4, 3, dilated_kernel_size=7, padding=3), (11, )),
    'Dcls3d': (lambda: Dcls3d(2, 2, 3, dilated_kernel_size=3, padding=1, version='max'), (4, 5, 4)),
    'Dcls3_1d':
    (lambda: Dcls3_1d(2, 4, 3, dense_kernel_size=(3, 1), dilated_kernel_size=5, padding=(1, 0, 2)),
     (4, 3, 7)),
    'Dcls2dK1d':
    (lambda: Dcls2dK1d(4, 4, 3, dilated_kernel_size=7, padding=(3, 0), groups=4, version='v0'),
     (9, 6)),
}


def counting(layer):
    """Makes ``layer`` count its kernel constructions in ``layer.builds``."""
    build = layer.construct_kernel
    layer.builds = 0

    def counted():
        layer.builds += 1
        return build()

    layer.construct_kernel = counted
    return layer


def make(name):
    factory, spatial = LAYERS[name]
    torch.manual_seed(0)
    layer = counting(factory())
    x = torch.randn(2, layer.in_channels, *spatial)
    return layer, x


def fresh_output(layer, x):
    """The output with a kernel built now, bypassing the cache."""
    from mmdcls.ops import conv_nd
    kernel = type(layer).construct_kernel(layer)
    return conv_nd(
        x, kernel, layer.bias, layer.stride, layer.padding, layer.groups, algo=layer.conv_algo)


@pytest.mark.parametrize('name', list(LAYERS))
@pytest.mark.parametrize('context', ['no_grad', 'inference_mode', 'frozen'])
def test_reused_while_unchanged(name, context):
    layer, x = make(name)
    layer.eval()
    if context == 'frozen':
        layer.requires_grad_(False)
    ctx = {
        'no_grad': torch.no_grad,
        'inference_mode': torch.inference_mode,
        'frozen': torch.enable_grad
    }[context]
    with ctx():
        first = layer(x)
        second = layer(x)
        third = layer(x[:1])
    assert layer.builds == 1
    assert torch.equal(first, second)
    torch.testing.assert_close(third, first[:1])  # (another batch size: another conv path)
    with torch.no_grad():
        # (not bit-equal: 'auto' may pick another algorithm once the spectrum is cached)
        torch.testing.assert_close(first, fresh_output(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['Dcls2d-v0', 'Dcls3_1d'])
def test_never_when_a_gradient_is_needed(name):
    layer, x = make(name)
    with torch.no_grad():
        layer(x)
    assert layer.builds == 1
    for _ in range(2):
        y = layer(x)  # training: builds every time, and gradients flow
        y.square().sum().backward()
    assert layer.builds == 3 and layer.P.grad is not None and layer.P.grad.abs().sum() > 0
    assert layer._kernel_cache().kernel is None  # dropped: the parameters are about to change
    layer.eval()  # eval mode alone does not stop gradients: still built each time
    layer(x).sum().backward()
    assert layer.builds == 4


def _changes():

    def optimizer_step(layer):
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer.train()
        layer(torch.randn(1, layer.in_channels, *[9] * len(layer.kernel_size))).sum().backward()
        optimizer.step()
        layer.eval()

    def load_state_dict(layer):
        state = {k: v + 0.25 if k != 'P' else v.flip(-1) for k, v in layer.state_dict().items()}
        layer.load_state_dict(state)

    def in_place(layer):
        with torch.no_grad():
            layer.weight.mul_(-2)

    def data_swap(layer):
        layer.P.data = layer.P.data.clone().add_(0.5)

    def data_in_place(layer):
        layer.P.data.add_(0.5)  # .data has a version counter of its own

    def weight_data_in_place(layer):
        layer.weight.data.mul_(-2)

    def numpy_write(layer):
        layer.weight.detach().numpy()[...] *= -2

    def fused_optimizer_step(layer):
        try:
            optimizer = torch.optim.AdamW(layer.parameters(), lr=0.5, fused=True)
        except (RuntimeError, TypeError) as error:
            pytest.skip(f'no fused AdamW on this torch / device: {error}')
        layer.train()
        layer(torch.randn(1, layer.in_channels, *[9] * len(layer.kernel_size))).sum().backward()
        optimizer.step()
        layer.eval()

    def clamp(layer):
        with torch.no_grad():
            layer.P.data = layer.P.data * 0 + 100  # beyond the kernel: clamping changes it
            layer(torch.randn(1, layer.in_channels, *[9] * len(layer.kernel_size)))  # cached
        layer.clamp_parameters()

    return dict(
        optimizer_step=optimizer_step,
        load_state_dict=load_state_dict,
        in_place=in_place,
        data_swap=data_swap,
        data_in_place=data_in_place,
        weight_data_in_place=weight_data_in_place,
        numpy_write=numpy_write,
        fused_optimizer_step=fused_optimizer_step,
        clamp=clamp)


CHANGES = _changes()


@pytest.mark.parametrize('name', ['Dcls2d-v0', 'Dcls2d-gauss', 'Dcls3_1d', 'Dcls2dK1d'])
@pytest.mark.parametrize('change', list(CHANGES))
def test_rebuilt_after_every_change(name, change):
    layer, x = make(name)
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    CHANGES[change](layer)
    builds = layer.builds
    with torch.inference_mode():
        after = layer(x)
    assert layer.builds == builds + 1, 'the cached kernel was reused after ' + change
    with torch.no_grad():
        expected = fresh_output(layer, x)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, before, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('name', ['Dcls2d-v0', 'Dcls2dK1d'])
def test_rebuilt_after_to(name):
    layer, x = make(name)
    layer.eval()
    with torch.no_grad():
        layer(x)
        layer.double()
        y = layer(x.double())
        assert y.dtype == torch.float64 and layer._kernel_cache().kernel.dtype == torch.float64
        layer.float()
        torch.testing.assert_close(layer(x), y.float())
    assert layer.builds == 3


def test_shared_positions_invalidate_every_layer_using_them():
    """ConvNeXt-DCLS shares one P per stage: a step on it reaches every block's layer."""
    first, x = make('Dcls2d-v0')
    second = counting(Dcls2d(8, 8, 5, dilated_kernel_size=17, padding=8, groups=8, version='v0'))
    second.P = first.P
    with torch.no_grad():
        first(x), second(x)
        first.P.add_(0.5)
        first(x), second(x)
    assert first.builds == second.builds == 2


def test_prepared_spectra_kept_per_input_size():
    layer, x = make('Dcls2d-v0')
    layer.conv_algo = 'fft'
    layer.eval()
    cache = layer._kernel_cache()

    def spectra():
        return {
            key: value
            for key, value in cache._constant._values.items() if key[0] == 'prepared'
        }

    with torch.no_grad():
        y = layer(x)
        assert len(spectra()) == 1
        spectrum = next(iter(spectra().values()))
        assert torch.equal(layer(x), y)
        assert next(iter(spectra().values())) is spectrum  # reused
        layer(torch.randn(1, 8, 20, 16))
        assert len(spectra()) == 2
        torch.testing.assert_close(y, fresh_output(layer, x), rtol=1e-5, atol=1e-5)
        layer.weight.data.mul_(0.5)
        layer(x)
    assert len(spectra()) == 1 and layer.builds == 2


def test_identical_values_in_a_new_storage_reuse_the_kernel():
    """Only values matter: a state dict of the same values (new storages, new versions) keeps
    the kernel; one differing bit (-0.0 against 0.0) does not."""
    layer, x = make('Dcls2d-v0')
    layer.eval()
    with torch.no_grad():
        layer(x)
        layer.load_state_dict({k: v.clone() for k, v in layer.state_dict().items()})
        layer(x)
        assert layer.builds == 1
        layer.weight.data[0, 0, 0] = 0.0
        layer(x)
        layer.weight.data[0, 0, 0] = -0.0
        layer(x)
    assert layer.builds == 3


def test_cache_is_not_copied_or_pickled():
    factory, spatial = LAYERS['Dcls2d-gauss']
    layer = factory()
    x = torch.randn(2, layer.in_channels, *spatial)
    layer.eval()
    with torch.no_grad():
        y = layer(x)
    copied = copy.deepcopy(layer)
    assert '_dcls_kernel_cache' not in copied.__dict__
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(copied(x), y) and torch.equal(loaded(x), y)
    assert layer._kernel_cache().kernel is not None  # the original keeps its own


@pytest.mark.parametrize('memcmp', [True, False], ids=['memcmp', 'torch'])
def test_parameter_comparison_is_bitwise(monkeypatch, memcmp):
    """Equal bits only: NaN equals NaN, -0.0 differs from 0.0, a non-contiguous view with the
    same values is the same; both comparison paths."""
    from mmdcls.ops import kernel_cache
    if not memcmp:
        monkeypatch.setattr(kernel_cache, '_MEMCMP', None)
    elif kernel_cache._MEMCMP is None:
        pytest.skip('no memcmp found in the C library')
    value = torch.tensor([[1.0, float('nan')], [0.0, 2.0]])
    copy = value.clone()
    assert kernel_cache._same_bytes(value, copy)
    assert not kernel_cache._same_bytes(value.masked_fill(value == 0, -0.0), copy)
    assert kernel_cache._same_bytes(value.t().contiguous().t(), copy)
    assert not kernel_cache._same_bytes(value.double(), copy)
