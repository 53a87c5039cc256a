"""ConvNeXtDCLSClassifier: the released ImageNet model's exact state dict, outputs, timm hook."""
import sys
import types

import pytest
import torch

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier
from mmdcls.models.utils import extract_state_dict, load_checkpoint_file


def classifier(arch, **kwargs):
    cfg = dict(
        arch=arch,
        num_classes=10,
        dilated_kernel_size=7,
        kernel_count=5,
        layer_scale_init_value=1.0)
    cfg.update(kwargs)
    return ConvNeXtDCLSClassifier(**cfg)


@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_released_state_dict_loads_strictly_and_matches(release_model, small_arch, version):
    ref = release_model(version=version, classifier=True).eval()
    model = classifier(small_arch, version=version).eval()
    assert sorted(model.state_dict()) == sorted(ref.state_dict())
    model.load_state_dict(ref.state_dict())  # strict
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert got.shape == (2, 10)
    assert ((got - expected).norm() / expected.norm()) < 1e-4


def test_round_trip_to_the_backbone(release_model, small_arch, save_release_checkpoint):
    """A checkpoint trained with the classifier loads downstream without conversion."""
    model = classifier(small_arch)
    path = save_release_checkpoint(model.state_dict())
    state = extract_state_dict(load_checkpoint_file(path))
    fresh = classifier(small_arch)
    fresh.load_state_dict(state)
    backbone = ConvNeXtDCLS(
        small_arch,
        dilated_kernel_size=7,
        kernel_count=5,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    torch.testing.assert_close(backbone.stages[3][0].dwconv.P, model.stages[3][0].dwconv.P)


def test_tiny_parameter_count_matches_the_release():
    model = ConvNeXtDCLSClassifier('tiny')
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params / 1e6 - 28.59) < 0.01, n_params  # release: 28.6M
    keys = model.state_dict().keys()
    assert 'stages.2.8.dwconv.P' in keys and 'head.weight' in keys and 'norm.weight' in keys
    assert not any(k.startswith(('norm0', 'norm3')) for k in keys)
    assert model.stages[2][8].dwconv.P is model.stages[2][0].dwconv.P


def test_head_init_scale_and_arguments(small_arch):
    torch.manual_seed(0)
    a = classifier(small_arch)
    torch.manual_seed(0)
    b = classifier(small_arch, head_init_scale=0.5)
    torch.testing.assert_close(b.head.weight, a.head.weight * 0.5)
    with pytest.raises(ValueError, match='out_indices'):
        classifier(small_arch, out_indices=(3, ))
    with pytest.raises(ValueError, match='num_classes'):
        classifier(small_arch, num_classes=0)


def test_timm_registration_when_timm_is_present(monkeypatch, small_arch):
    """timm is not installed: a stand-in ``timm.models.register_model`` records the calls."""
    registered = {}
    fake_timm = types.ModuleType('timm')
    fake_models = types.ModuleType('timm.models')
    fake_models.register_model = lambda fn: registered.setdefault(fn.__name__, fn)
    fake_timm.models = fake_models
    monkeypatch.setitem(sys.modules, 'timm', fake_timm)
    monkeypatch.setitem(sys.modules, 'timm.models', fake_models)
    from mmdcls.models.classifiers import convnext_dcls_classifier as module
    module._register_timm_models()
    assert sorted(registered) == ['convnext_dcls_base', 'convnext_dcls_small', 'convnext_dcls_tiny']
    model = registered['convnext_dcls_tiny'](num_classes=7, pretrained_cfg=None)
    assert isinstance(model, ConvNeXtDCLSClassifier) and model.head.out_features == 7
    assert model.kernel_count == 34
    with pytest.raises(ValueError, match='pretrained=True'):
        registered['convnext_dcls_small'](pretrained=True)
