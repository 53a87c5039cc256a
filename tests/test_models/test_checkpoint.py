"""Released checkpoints load through init_cfg; wrong ones fail with clear messages."""
import argparse
import pickle
import re

import pytest
import torch

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier
from mmdcls.models.utils import (UnreadableCheckpointError, check_checkpoint_file,
                                 checkpoint_filter_fn, detect_layout, extract_state_dict,
                                 load_checkpoint_file)
from mmdcls.utils.compat import TORCH_ALLOW_LIST


def backbone(arch, **kwargs):
    cfg = dict(arch=arch, dilated_kernel_size=7, kernel_count=5, layer_scale_init_value=1.0)
    cfg.update(kwargs)
    return ConvNeXtDCLS(**cfg)


@pytest.fixture
def no_global_allow_list():
    """Empties torch's global weights_only allow-list (``import mmdcls`` fills it for resuming)
    so that the loader is shown not to depend on it; restores it afterwards. Torch < 2.4 has
    no such list (nothing to empty)."""
    if not hasattr(torch.serialization, 'get_safe_globals'):
        yield
        return
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
    if TORCH_ALLOW_LIST:
        # what torch >= 2.6 does by default with such a file (weights_only=True): refuses args
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
    if TORCH_ALLOW_LIST:
        # the safety default is still on afterwards (nothing allow-listed globally); older
        # torch loads anything by default, which mmdcls's own loader never relies on
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
    model = backbone(
        small_arch,
        out_indices=(2, ),
        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.norm2.weight, ref.norm2.weight)
    with pytest.raises(ValueError, match='prefix'):
        model.load_pretrained(str(path), prefix='encoder.')


def test_other_kernel_setting_names_the_differing_shapes(release_model, small_arch,
                                                         save_release_checkpoint):
    path = save_release_checkpoint(release_model(classifier=True, kernel_count=5).state_dict())
    model = backbone(small_arch, kernel_count=6)
    with pytest.raises(
            ValueError,
            match=r'shapes differ[\s\S]*stages\.0\.0\.dwconv\.weight: '
            r'checkpoint \(8, 1, 5\) vs model \(8, 1, 6\)'):
        model.load_pretrained(path)


def test_other_arch_names_missing_and_extra_keys(release_model, save_release_checkpoint):
    path = save_release_checkpoint(release_model(classifier=True).state_dict())
    deeper = backbone(dict(depths=[1, 3, 2, 1], channels=[8, 16, 16, 24]))
    with pytest.raises(ValueError, match=r'missing in the checkpoint:\s+stages\.1\.2\.'):
        deeper.load_pretrained(path)
    wider = backbone(dict(depths=[1, 2, 2, 1], channels=[8, 16, 16, 32]))
    with pytest.raises(
            ValueError,
            match=r'stages\.3\.0\.pwconv1\.weight: checkpoint \(96, 24\) '
            r'vs model \(128, 32\)'):
        wider.load_pretrained(path)
    plain = ConvNeXtDCLS(
        dict(depths=[1, 2, 2, 1], channels=[8, 16, 16, 24]),
        dwconv_cfg=dict(type='Conv2d', kernel_size=7))
    with pytest.raises(ValueError, match=r'not in the model:\s+stages\.0\.0\.dwconv\.P'):
        plain.load_pretrained(path)


def test_per_block_positions_must_agree_when_shared(release_model, small_arch,
                                                    save_release_checkpoint):
    state = release_model(classifier=True).state_dict()
    state['stages.2.1.dwconv.P'] = state['stages.2.1.dwconv.P'] + 0.5
    path = save_release_checkpoint(state)
    with pytest.raises(
            ValueError,
            match=r'stage 2 stores different dwconv\.P in blocks 0 and '
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
    model = backbone(
        small_arch,
        init_cfg=[
            dict(type='Pretrained', checkpoint=path),
            dict(type='Constant', layer='LayerNorm2d', val=2., bias=0.)
        ])
    model.init_weights()
    assert torch.all(model.norm0.weight == 2)  # new key: from the other initialiser
    # loaded keys win over the other initialiser (mmengine applies Pretrained last too)
    torch.testing.assert_close(model.downsample_layers[1][0].weight,
                               ref.downsample_layers[1][0].weight)
    with pytest.raises(ValueError, match='Pretrained takes'):
        backbone(small_arch, init_cfg=dict(type='Pretrained', path=path)).init_weights()


# ---------------------------------------------------------------------- checkpoint_filter_fn
def _whole_model(state_dict):
    """A detector checkpoint's state dict as mmdet 2.x saved the release's: backbone + others."""
    state = {f'backbone.{k}': v for k, v in state_dict.items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(2)
    state['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(3)
    return state


def test_layouts_detected_by_sentinel_keys(release_model):
    assert detect_layout(release_model(classifier=True).state_dict()) == 'classifier'
    assert detect_layout(release_model().state_dict()) == 'backbone'
    assert detect_layout(_whole_model(release_model().state_dict())) == 'model'
    with pytest.raises(
            ValueError,
            match=r"x.pth: not a ConvNeXt\(-DCLS\) checkpoint.*"
            r"\['encoder.stem.weight'\]"):
        detect_layout({'encoder.stem.weight': torch.zeros(1)}, 'x.pth')


def test_filter_accounts_for_every_key_of_a_whole_model(release_model, small_arch):
    """A whole detector's checkpoint into a backbone with one output: every checkpoint key is
    loaded or ignored with a reason, the one model norm it lacks is new; the inputs are left
    as they were (a pure function)."""
    whole = _whole_model(release_model().state_dict())
    before = dict(whole)
    model = backbone(small_arch, out_indices=(1, ))
    result = checkpoint_filter_fn(whole, model)
    assert result.layout == 'model'
    assert list(whole) == list(before) and all(whole[k] is before[k] for k in before)
    assert len(result.state_dict) == len(whole)  # nothing left out of the account
    loaded = set(result.state_dict) - set(result.ignored)
    assert loaded == set(model.state_dict())
    assert sorted(result.ignored) == sorted(
        ['neck.lateral_convs.0.conv.weight', 'roi_head.bbox_head.fc_cls.weight'] +
        [f'norm{i}.{p}' for i in (0, 2, 3) for p in ('weight', 'bias')])
    assert 'neck / heads' in result.ignored['neck.lateral_convs.0.conv.weight']
    assert 'output norm of stage 2' in result.ignored['norm2.weight']
    assert 'not in out_indices' in result.ignored['norm2.weight']
    assert result.new == {}


def test_filter_classifier_layouts(release_model, small_arch):
    state = release_model(classifier=True).state_dict()
    into_backbone = checkpoint_filter_fn(state, backbone(small_arch, out_indices=(0, 3)))
    assert sorted(into_backbone.ignored) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert list(into_backbone.new) == ['norm0.weight', 'norm0.bias', 'norm3.weight', 'norm3.bias']
    classifier = ConvNeXtDCLSClassifier(
        small_arch, num_classes=10, dilated_kernel_size=7, kernel_count=5)
    exact = checkpoint_filter_fn(state, classifier)
    assert exact.layout == 'classifier' and not exact.ignored and not exact.new
    # a backbone's checkpoint has no head: the classifier refuses it, naming the keys
    with pytest.raises(
            ValueError,
            match=r'missing in the checkpoint:[\s\S]*head\.weight'
            r'[\s\S]*not in the model:[\s\S]*norm0\.weight'):
        classifier.load_state_dict_checked(release_model().state_dict())


def test_whole_model_checkpoint_loads_without_prefix(release_model, small_arch, tmp_path):
    """The release's COCO / ADE20K files (mmdet 2.x / mmseg 0.x) initialise a backbone as they
    are: its backbone.* is taken, the rest reported as ignored; with prefix the same weights."""
    ref = release_model()
    path = tmp_path / 'coco.pth'
    torch.save({'state_dict': _whole_model(ref.state_dict()), 'meta': {}}, path)
    model = backbone(small_arch, out_indices=(2, ))
    summary = model.load_pretrained(str(path))
    assert 'neck.lateral_convs.0.conv.weight' in summary['ignored']
    torch.testing.assert_close(model.norm2.weight, ref.norm2.weight)
    torch.testing.assert_close(model.stages[2][1].dwconv.P, ref.stages[2][0].dwconv.P)
    with_prefix = backbone(small_arch, out_indices=(2, ))
    with_prefix.load_pretrained(str(path), prefix='backbone.')
    for key, value in with_prefix.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_whole_model_keys_that_collide_are_refused(release_model, small_arch):
    whole = _whole_model(release_model().state_dict())
    whole['stages.0.0.gamma'] = torch.zeros(8)  # outside backbone. but a backbone name
    with pytest.raises(ValueError, match=r"collide with backbone names \['stages.0.0.gamma'\]"):
        checkpoint_filter_fn(whole, backbone(small_arch))


def _broken_files(tmp_path):
    """``{name: (path, what the message says)}``: files torch cannot read."""
    good = tmp_path / 'good.pth'
    torch.save({'model': {'w': torch.randn(64, 64)}, 'meta': {'epoch': 3}}, good)
    data = good.read_bytes()
    legacy = tmp_path / 'legacy.pth'
    torch.save({'model': {'w': torch.randn(8)}}, legacy, _use_new_zipfile_serialization=False)
    files = {
        'empty': (b'', 'the file is empty'),
        'truncated': (data[:len(data) // 2], 'truncated: a zip archive'),
        'truncated_end': (data[:-10], 'truncated: a zip archive'),
        'truncated_head': (data[:100], 'truncated: a zip archive'),
        'truncated_magic': (data[:3], r'truncated: the first 3 byte\(s\) of a zip archive'),
        'html': (b'<!DOCTYPE html><html>404</html>', "not a zip archive.*b'<!DOCTYPE html><'"),
        'legacy_truncated': (legacy.read_bytes()[:40], 'truncated: a legacy'),
    }
    paths = {}
    for name, (content, message) in files.items():
        path = tmp_path / f'{name}.pth'
        path.write_bytes(content)
        paths[name] = (str(path), message)
    return paths


def test_unreadable_files_are_named_with_the_reason(tmp_path, no_global_allow_list):
    for name, (path, message) in _broken_files(tmp_path).items():
        with pytest.raises(UnreadableCheckpointError) as info:
            load_checkpoint_file(path)
        text = str(info.value)
        assert text.startswith(f'{path}: not a readable torch checkpoint: '), (name, text)
        assert re.search(message, text), (name, text)
        assert '\n' not in text, name
        assert info.value.__cause__ is not None, name  # torch's own error, chained
        if name != 'legacy_truncated':  # the cheap check reads no pickle: sound as a file
            with pytest.raises(UnreadableCheckpointError, match=re.escape(path)):
                check_checkpoint_file(path)
    good = str(tmp_path / 'good.pth')
    check_checkpoint_file(good)
    assert load_checkpoint_file(good)['meta'] == {'epoch': 3}
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        check_checkpoint_file(str(tmp_path / 'nowhere.pth'))


class _RunsCode:
    """What a malicious checkpoint pickles: a call of an arbitrary function on load."""

    def __reduce__(self):
        return (print, ('unpickling ran code', ))


@pytest.mark.parametrize('protocol', [0, 2, 5])
def test_bare_pickles_are_still_refused(tmp_path, capsys, protocol):
    """A malicious pickle that is not a zip archive (as torch.save writes): refused as not a
    checkpoint (protocol 0) or as an unpickling of a disallowed global (protocol 2+, which
    starts like torch's legacy format); its code never runs."""
    path = tmp_path / 'evil.pth'
    path.write_bytes(pickle.dumps({'model': {}, 'x': _RunsCode()}, protocol=protocol))
    error = UnreadableCheckpointError if protocol == 0 else RuntimeError
    with pytest.raises(
            error, match='not a zip archive' if protocol == 0 else 'refuses to unpickle'):
        load_checkpoint_file(str(path))
    assert 'unpickling ran code' not in capsys.readouterr().out
