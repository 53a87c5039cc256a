"""convnext_dcls_pretrained: init_cfg Pretrained and the loaders behind the models' methods."""
import pytest
import torch

from mmdcls.models import ConvNeXtDCLS
from mmdcls.models.backbones import convnext_dcls_pretrained as pretrained


def backbone(arch, **kwargs):
    return ConvNeXtDCLS(
        arch, dilated_kernel_size=7, kernel_count=5, layer_scale_init_value=1.0, **kwargs)


def test_functions_load_what_the_methods_load(release_model, small_arch, save_release_checkpoint):
    ref = release_model(classifier=True)
    path = save_release_checkpoint(ref.state_dict())
    by_function, by_method = backbone(small_arch), backbone(small_arch)
    summary = pretrained.load_pretrained(by_function, path)
    assert summary == by_method.load_pretrained(path)
    assert sorted(summary['ignored']) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    for key, value in by_function.state_dict().items():
        torch.testing.assert_close(value, by_method.state_dict()[key], rtol=0, atol=0)
        if not key.startswith('norm'):
            torch.testing.assert_close(value, ref.state_dict()[key], rtol=0, atol=0)


def test_init_weights_applies_the_other_initialisers_and_restores_init_cfg(tmp_path, small_arch):
    init_cfg = [
        dict(type='Constant', layer='LayerNorm2d', val=3., bias=0.),
        dict(type='Pretrained', checkpoint=str(tmp_path / 'missing.pth'))
    ]
    model = backbone(small_arch, init_cfg=init_cfg)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        model.init_weights()
    assert model.init_cfg == init_cfg  # restored although the load failed
    assert torch.all(model.norm0.weight == 3)  # the Constant initialiser ran first


def test_init_weights_without_pretrained_is_mmengines(small_arch):
    model = backbone(small_arch, init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0))
    model.init_weights()
    assert model.is_init and torch.all(model.stages[0][0].pwconv1.weight == 0.5)


def test_per_block_positions_need_an_unshared_model(release_model, small_arch):
    state = release_model().state_dict()
    state['stages.2.1.dwconv.P'] = state['stages.2.1.dwconv.P'] + 1
    with pytest.raises(ValueError, match='stage 2 stores different dwconv.P in blocks 0 and 1'):
        pretrained.load_state_dict_into(backbone(small_arch), state)
    unshared = backbone(small_arch, share_positions=False)
    pretrained.load_state_dict_into(unshared, state)
    torch.testing.assert_close(unshared.stages[2][1].dwconv.P, state['stages.2.1.dwconv.P'])
