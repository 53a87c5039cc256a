"""Every config under configs/ loads, its model builds (no weights) and its optimizer builds.

Models are built at their real size (tiny to base) but never run; pretrained ``init_cfg`` entries
are removed (the checkpoints are not on the test machine) after checking where they point.
Each DCLS config has a plain-ConvNeXt twin that differs only in the depthwise layer, the
ImageNet checkpoint and the clamp hook; both inherit the recipe they share from
``configs/_base_/``, never one another.
"""
import ast
import copy
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmdcls.utils.tool_setup import detect_scope

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs')
# mmdet / mmseg configs only: the mmpretrain ones (configs/imagenet, the demo's classification
# stage) are built by tests/test_configs/test_imagenet_configs.py and tests/test_cls, in the lane
# that has mmpretrain.
BASE_DIR = osp.join(CONFIG_DIR, '_base_')
# the configs themselves, not the _base_ pieces they inherit
ALL_CONFIGS = sorted(
    c for c in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if not c.startswith(BASE_DIR + osp.sep))
CONFIGS = [c for c in ALL_CONFIGS if detect_scope(c) in ('mmdet', 'mmseg')]
DCLS_CONFIGS = [c for c in CONFIGS if osp.basename(osp.dirname(c)) == 'convnext_dcls']

# Parameter counts published in the release's tables (detector / segmentor, in millions,
# rounded), for the DCLS models and their ConvNeXt twins alike.
PUBLISHED_PARAMS_M = {
    ('cascade-mask-rcnn', 't'): 86,
    ('cascade-mask-rcnn', 's'): 108,
    ('cascade-mask-rcnn', 'b'): 146,
    ('mask-rcnn', 't'): 48,
    ('upernet', 't'): 60,
    ('upernet', 's'): 82,
    ('upernet', 'b'): 122,
}
ARCH = {'t': 'tiny', 's': 'small', 'b': 'base'}


def _rel(path):
    return osp.relpath(path, CONFIG_DIR)


def _model_key(path):
    """('cascade-mask-rcnn' | 'mask-rcnn' | 'upernet', 't' | 's' | 'b') from the file name."""
    name = osp.basename(path)
    method = name.split('_', 1)[0]
    size = name.split('_')[1].rsplit('-', 1)[-1]
    return method, size


def _pop_pretrained(cfg, found):
    """Removes every Pretrained init_cfg (recording its checkpoint) and ``pretrained`` key."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            found.append(init['checkpoint'])
            cfg.pop('init_cfg')
        if cfg.get('pretrained') is not None:
            found.append(cfg.pop('pretrained'))
        for value in cfg.values():
            _pop_pretrained(value, found)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _pop_pretrained(value, found)


def _registry(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS


def test_there_are_configs():
    names = {_rel(c) for c in CONFIGS}
    for size in 'tsb':
        assert f'convnext_dcls/cascade-mask-rcnn_convnext-dcls-{size}_fpn_giou-4conv1fc_' \
               'ms-crop-3x_coco.py' in names
        assert f'convnext_dcls/upernet_convnext-dcls-{size}_8xb2-160k_ade20k-512x512.py' in names
        assert f'convnext_dcls/upernet_convnext-dcls-{size}_8xb2-160k_ade20k-512x512_' \
               'ms-test.py' in names
    assert 'convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_1x_coco.py' in names
    assert 'convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_ms-crop-3x_coco.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=_rel)
def test_config_builds(path):
    """Any config: loads, builds, its optimizer builds; a model with DCLS positions has the clamp
    hook and position groups without weight decay at position_lr_mult x their layer's lr. The
    model-zoo configs (convnext_dcls/, convnext_baseline/) are also checked against the release:
    checkpoint, parameter count, shared positions."""
    cfg = Config.fromfile(path)  # also imports mmdcls through custom_imports
    assert cfg.custom_imports == dict(imports=['mmdcls'], allow_failed_imports=False)
    assert cfg.default_scope in ('mmdet', 'mmseg')
    folder = osp.basename(osp.dirname(path))
    is_zoo = folder in ('convnext_dcls', 'convnext_baseline')
    is_tta = cfg.model.type == 'SegTTAModel'

    model_cfg = copy.deepcopy(cfg.model)
    checkpoints = []
    _pop_pretrained(model_cfg, checkpoints)
    registry = _registry(cfg.default_scope)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.build(model_cfg)
        net = model.module if is_tta else model
        positions = [n for n, _ in net.named_parameters() if n.endswith('.P')]
        optim_wrapper = build_optim_wrapper(net, copy.deepcopy(cfg.optim_wrapper))

    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    if positions:
        assert 'mmdcls.DCLSClampHook' in hooks, 'a DCLS model needs the clamp hook'
        groups = {g['group_name']: g for g in optim_wrapper.optimizer.param_groups}
        position_groups = [g for name, g in groups.items() if name.endswith('_position')]
        assert sum(len(g['params']) for g in position_groups) == len(positions)
        mult = cfg.optim_wrapper.paramwise_cfg.get('position_lr_mult', 5.0)
        for group in position_groups:
            assert group['weight_decay'] == 0
            same_layer = groups[group['group_name'].replace('_position', '_decay')]
            assert group['lr'] == pytest.approx(same_layer['lr'] * mult)
    if not is_zoo:
        return

    is_dcls = folder == 'convnext_dcls'
    method, size = _model_key(path)
    dcls = 'dcls_' if is_dcls else ''
    suffix = '_ema' if is_dcls else ''
    assert checkpoints == [f'checkpoints/convnext_{dcls}{ARCH[size]}_1k_224{suffix}.pth']
    assert type(net.backbone).__name__ == 'ConvNeXtDCLS'
    # One position tensor per stage (shared by its blocks) for DCLS; none for the twins.
    assert len(positions) == (4 if is_dcls else 0), positions
    n_params = sum(p.numel() for p in net.parameters()) / 1e6
    if (method, size) in PUBLISHED_PARAMS_M:  # Mask R-CNN S/B are not in the release
        assert abs(n_params - PUBLISHED_PARAMS_M[(method, size)]) < 1.0, n_params
    assert hooks == (['mmdcls.DCLSClampHook'] if is_dcls else [])
    assert is_tta == path.endswith('_ms-test.py')
    if is_tta:
        single = Config.fromfile(path.replace('_ms-test.py', '.py'))
        assert cfg.model.module == single.model
        assert cfg.test_dataloader.dataset.pipeline == single.tta_pipeline


@pytest.mark.parametrize('path', DCLS_CONFIGS, ids=_rel)
def test_baseline_twin_differs_only_in_the_depthwise_layer(path):
    twin = osp.join(CONFIG_DIR, 'convnext_baseline',
                    osp.basename(path).replace('convnext-dcls-', 'convnext-'))
    assert osp.exists(twin), f'no plain ConvNeXt twin for {_rel(path)}'
    dcls, plain = Config.fromfile(path).to_dict(), Config.fromfile(twin).to_dict()
    for cfg in (dcls, plain):
        cfg.pop('checkpoint_file')
        cfg.pop('custom_hooks')
        model = cfg['model'].get('module', cfg['model'])
        model['backbone'].pop('init_cfg')
    plain_model = plain['model'].get('module', plain['model'])
    assert plain_model['backbone'].pop('dwconv_cfg') == dict(type='Conv2d', kernel_size=7)
    assert dcls == plain


def _local_bases(path):
    """The local files ``path`` names in ``_base_``, as absolute paths (toolkit bases left out)."""
    tree = ast.parse(open(path).read(), path)
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            names += [value] if isinstance(value, str) else list(value)
    return [osp.normpath(osp.join(osp.dirname(path), n)) for n in names if '::' not in n]


@pytest.mark.parametrize(
    'path', [c for c in ALL_CONFIGS if osp.basename(osp.dirname(c)) != '_demo_'], ids=_rel)
def test_twins_inherit_a_shared_recipe_not_one_another(path):
    """A DCLS config and its plain twin inherit the same recipe under configs/_base_/ (the
    test-time variants their own single-scale config), so editing one never changes the
    other."""
    bases = _local_bases(path)
    assert len(bases) == 1, bases
    if path.endswith('_ms-test.py'):
        assert bases == [path.replace('_ms-test.py', '.py')]
        return
    assert bases[0].startswith(BASE_DIR + osp.sep) and osp.isfile(bases[0]), bases
    name = osp.basename(path)
    twin_name = name.replace('convnext-dcls-', 'convnext-')
    assert osp.basename(bases[0]) == twin_name  # the recipe is named after the plain model
    folder = osp.dirname(path)
    twin_folder = {
        'convnext_dcls': 'convnext_baseline',
        'convnext_baseline': 'convnext_dcls',
        'imagenet': 'imagenet'
    }[osp.basename(folder)]
    twin = osp.join(CONFIG_DIR, twin_folder,
                    name.replace('convnext-', 'convnext-dcls-') if name == twin_name else twin_name)
    assert osp.isfile(twin) and _local_bases(twin) == bases
