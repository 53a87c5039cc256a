"""Released checkpoints load through init_cfg; wrong ones fail with clear messages."""
import argparse
import pickle

import pytest
import torch

from mmdcls.models import ConvNeXtDCLS
from mmdcls.models.utils import extract_state_dict, load_checkpoint_file


def backbone(arch, **kwargs):
    cfg = dict(arch=arch, dilated_kernel_size=7, kernel_count=5, layer_scale_init_value=1.0)
    cfg.update(kwargs)
    return ConvNeXtDCLS(**cfg)


@pytest.fixture
def no_global_allow_list():
    """Empties torch's global weights_only allow-list (``import mmdcls`` fills it for resuming)
    so that the loader is shown not to depend on it; restores it afterwards."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def test_released_imagenet_checkpoint_loads_through_init_cfg(release_model, small_arch,
                                                             save_release_checkpoint,
                                                             no_global_allow_list):
    ref = release_model(classifier=True)
    path = save_release_checkpoint(ref.state_dict())
    # what torch 2.13 does by default with such a file (weights_only=True): refuses args
    with pytest.raises(pickle.UnpicklingError, match='Namespace'):
        torch.load(path)

    model = backbone(small_arch, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert model.is_init
    ref_state = ref.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith('norm'):
            continue  # norm{i} are new
        torch.testing.assert_close(value, ref_state[key], rtol=0, atol=0, msg=key)
    # the safety default is still on afterwards (nothing allow-listed globally)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_loading_reports_loaded_ignored_and_new_keys(release_model, small_arch,
                                                     save_release_checkpoint, monkeypatch):
    import mmdcls.models.utils.checkpoint as ckpt_module
    messages = []
    monkeypatch.setattr(ckpt_module, 'print_log', lambda msg, logger=None: messages.append(msg))
    path = save_release_checkpoint(release_model(classifier=True).state_dict())
    model = backbone(small_arch, out_indices=(1, 3))
    summary = model.load_pretrained(path)
    assert sorted(summary['ignored']) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert sorted(summary['new']) == ['norm1.bias', 'norm1.weight', 'norm3.bias', 'norm3.weight']
    assert len(summary['loaded']) == len(model.state_dict()) - 4
    assert len(messages) == 1
    assert "ignored 4 ['head.weight'" in messages[0] or "ignored 4 ['norm.weight'" in messages[0]
    assert 'new (kept their initialisation) 4' in messages[0]


def test_detection_backbone_checkpoint_with_prefix(release_model, small_arch, tmp_path):
    ref = release_model()  # mmdet/mmseg backbone copy: has norm0..3
    state = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    model = backbone(small_arch, out_indices=(2,),
                     init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.norm2.weight, ref.norm2.weight)
    with pytest.raises(ValueError, match='prefix'):
        model.load_pretrained(str(path), prefix='encoder.')


def test_other_kernel_setting_names_the_differing_shapes(release_model, small_arch,
                                                         save_release_checkpoint):
    path = save_release_checkpoint(release_model(classifier=True, kernel_count=5).state_dict())
    model = backbone(small_arch, kernel_count=6)
    with pytest.raises(ValueError, match=r'shapes differ[\s\S]*stages\.0\.0\.dwconv\.weight: '
                       r'checkpoint \(8, 1, 5\) vs model \(8, 1, 6\)'):
        model.load_pretrained(path)


def test_other_arch_names_missing_and_extra_keys(release_model, save_release_checkpoint):
    path = save_release_checkpoint(release_model(classifier=True).state_dict())
    deeper = backbone(dict(depths=[1, 3, 2, 1], channels=[8, 16, 16, 24]))
    with pytest.raises(ValueError, match=r'missing in the checkpoint:\s+stages\.1\.2\.'):
        deeper.load_pretrained(path)
    wider = backbone(dict(depths=[1, 2, 2, 1], channels=[8, 16, 16, 32]))
    with pytest.raises(ValueError, match=r'stages\.3\.0\.pwconv1\.weight: checkpoint \(96, 24\) '
                       r'vs model \(128, 32\)'):
        wider.load_pretrained(path)
    plain = ConvNeXtDCLS(dict(depths=[1, 2, 2, 1], channels=[8, 16, 16, 24]),
                         dwconv_cfg=dict(type='Conv2d', kernel_size=7))
    with pytest.raises(ValueError, match=r'not in the model:\s+stages\.0\.0\.dwconv\.P'):
        plain.load_pretrained(path)


def test_per_block_positions_must_agree_when_shared(release_model, small_arch,
                                                    save_release_checkpoint):
    state = release_model(classifier=True).state_dict()
    state['stages.2.1.dwconv.P'] = state['stages.2.1.dwconv.P'] + 0.5
    path = save_release_checkpoint(state)
    with pytest.raises(ValueError, match=r'stage 2 stores different dwconv\.P in blocks 0 and '
                       r'1 .*share_positions=False'):
        backbone(small_arch).load_pretrained(path)
    unshared = backbone(small_arch, share_positions=False)
    unshared.load_pretrained(path)
    torch.testing.assert_close(unshared.stages[2][1].dwconv.P, state['stages.2.1.dwconv.P'])
    assert not torch.equal(unshared.stages[2][1].dwconv.P, unshared.stages[2][0].dwconv.P)


def test_shared_checkpoint_loads_into_unshared_model(release_model, small_arch,
                                                      save_release_checkpoint):
    ref = release_model(classifier=True, version='gauss')
    path = save_release_checkpoint(ref.state_dict())
    model = backbone(small_arch, share_positions=False, version='gauss')
    model.load_pretrained(path)
    torch.testing.assert_close(model.stages[1][1].dwconv.SIG, ref.stages[1][0].dwconv.SIG)


def test_load_checkpoint_file_errors(tmp_path, no_global_allow_list):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))

    path = tmp_path / 'other.pth'
    torch.save({'model': {}, 'obj': argparse.ArgumentParser}, path)
    with pytest.raises(RuntimeError, match='refuses to unpickle'):
        load_checkpoint_file(str(path))
    with pytest.raises(ValueError, match='top-level keys'):
        extract_state_dict({'args': 1, 'epoch': 2})


def test_ddp_prefix_and_bare_state_dicts():
    state = {'module.a': torch.zeros(1), 'module.b': torch.ones(1)}
    assert list(extract_state_dict(state)) == ['a', 'b']
    assert list(extract_state_dict({'model': {'x': torch.zeros(1)}})) == ['x']


def test_pretrained_inside_an_init_cfg_list(release_model, small_arch, save_release_checkpoint):
    ref = release_model(classifier=True)
    path = save_release_checkpoint(ref.state_dict())
    model = backbone(small_arch, init_cfg=[
        dict(type='Pretrained', checkpoint=path),
        dict(type='Constant', layer='LayerNorm2d', val=2., bias=0.)])
    model.init_weights()
    assert torch.all(model.norm0.weight == 2)  # new key: from the other initialiser
    # loaded keys win over the other initialiser (mmengine applies Pretrained last too)
    torch.testing.assert_close(model.downsample_layers[1][0].weight,
                               ref.downsample_layers[1][0].weight)
    with pytest.raises(ValueError, match='Pretrained takes'):
        backbone(small_arch, init_cfg=dict(type='Pretrained', path=path)).init_weights()
