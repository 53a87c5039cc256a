"""DCLSLearningRateDecayOptimizerConstructor: groups, layer scales, positions, validation."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmdcls.engine import DCLSLearningRateDecayOptimizerConstructor
from mmdcls.engine.optimizers import layer_decay_optim_constructor as module
from mmdcls.models.utils import DEFAULT_POSITION_LR_MULT, DEFAULT_SIGMA_LR_MULT
from .toy_models import NoDepthConvNeXt, ToyConvNeXtDCLS, ToyDetector

LR, WD = 2e-4, 0.05


def build(model, **paramwise):
    cfg = dict(
        constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
        paramwise_cfg=paramwise)
    return build_optim_wrapper(model, cfg)


def by_param(optim_wrapper):
    """id(param) -> its group, checking that no parameter is in two groups."""
    groups = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in groups, 'a parameter is in two groups'
            groups[id(p)] = group
    return groups


def test_every_trainable_parameter_once_and_shared_positions_once(backbone_factory):
    model = ToyDetector(backbone_factory())
    stage2 = model.backbone.stages[2]
    assert stage2[0].dwconv.P is stage2[3].dwconv.P  # shared per stage
    groups = by_param(build(model, decay_rate=0.7))
    assert set(groups) == {id(p) for p in model.parameters()}
    n_in_groups = sum(len(g['params']) for g in build(model, decay_rate=0.7).optimizer.param_groups)
    assert n_in_groups == len(list(model.parameters()))


def test_layer_wise_scales_positions_and_decay(backbone_factory):
    model = ToyDetector(backbone_factory())
    bb = model.backbone
    groups = by_param(build(model, decay_rate=0.7, decay_type='layer_wise', num_layers=6))
    max_id = 6 + 2

    def lr(p):
        return groups[id(p)]['lr']

    def wd(p):
        return groups[id(p)]['weight_decay']

    scale = lambda layer: 0.7**(max_id - layer - 1)  # noqa: E731
    assert lr(model.head.weight) == pytest.approx(LR)
    assert wd(model.head.weight) == WD and wd(model.head.bias) == 0
    assert lr(bb.downsample_layers[0][1].weight) == pytest.approx(LR * scale(0))
    assert lr(bb.stages[0][0].pwconv1.weight) == pytest.approx(LR * scale(1))
    assert lr(bb.stages[2][3].pwconv1.weight) == pytest.approx(LR * scale(4))
    assert lr(bb.stages[3][0].pwconv1.weight) == pytest.approx(LR * scale(6))
    assert lr(bb.norm0.weight) == pytest.approx(LR * scale(7))
    # Stage 2's one position tensor is used by blocks of layers 3 and 4: it learns at the rate
    # of the shallowest (block 0, layer 3), times position_lr_mult, without weight decay.
    P = bb.stages[2][0].dwconv.P
    assert DEFAULT_POSITION_LR_MULT == 5.0  # the release's
    assert lr(P) == pytest.approx(LR * scale(3) * DEFAULT_POSITION_LR_MULT)
    assert wd(P) == 0
    # Norms, biases and layer scales are not decayed; the DCLS weights and linears are.
    block = bb.stages[1][0]
    assert wd(block.gamma) == 0 and wd(block.norm.weight) == 0 and wd(block.dwconv.bias) == 0
    assert wd(block.dwconv.weight) == WD and wd(block.pwconv1.weight) == WD


def test_stage_wise_and_position_lr_mult(backbone_factory):
    model = ToyDetector(backbone_factory())
    bb = model.backbone
    groups = by_param(build(model, decay_rate=0.9, decay_type='stage_wise', position_lr_mult=2.0))
    scale = lambda layer: 0.9**(8 - layer - 1)  # noqa: E731
    assert groups[id(model.head.weight)]['lr'] == pytest.approx(LR)
    assert groups[id(bb.downsample_layers[3][1].weight)]['lr'] == pytest.approx(LR * scale(0))
    for i in range(4):
        block = bb.stages[i][-1]
        assert groups[id(block.pwconv1.weight)]['lr'] == pytest.approx(LR * scale(i + 1))
        assert groups[id(block.dwconv.P)]['lr'] == pytest.approx(LR * scale(i + 1) * 2.0)


def test_matches_mmdet_constructor_on_plain_weights():
    """With position_lr_mult=1 every lr equals mmdet's LearningRateDecayOptimizerConstructor's,
    and every weight decay too except the positions' (mmdet decays them)."""
    pytest.importorskip('mmdet')
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor as MMDet
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    for decay_type, depths, num_layers in (('layer_wise', (1, 1, 4, 1), 6),
                                           ('layer_wise', (1, 1, 10, 1), 12), ('stage_wise',
                                                                               (1, 1, 4, 1), 6)):
        model = ToyDetector(ToyConvNeXtDCLS(depths=depths))
        paramwise = dict(decay_rate=0.8, decay_type=decay_type, num_layers=num_layers)
        ours = by_param(build(model, position_lr_mult=1.0, **paramwise))
        theirs_wrapper = MMDet(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=LR, weight_decay=WD)),
            paramwise)(
                model)
        theirs = by_param(theirs_wrapper)
        for name, p in model.named_parameters():
            assert ours[id(p)]['lr'] == pytest.approx(theirs[id(p)]['lr']), (decay_type, name)
            expected_wd = 0.0 if name.endswith('.P') else theirs[id(p)]['weight_decay']
            assert ours[id(p)]['weight_decay'] == expected_wd, (decay_type, name)


def test_num_layers_from_backbone_and_checked():
    model = ToyDetector(ToyConvNeXtDCLS(depths=(1, 1, 10, 1)))  # 12 layer ids
    groups = by_param(build(model, decay_rate=0.5))
    assert groups[id(model.backbone.norm0.weight)]['lr'] == pytest.approx(LR)
    assert groups[id(model.backbone.stages[3][0].pwconv1.weight)]['lr'] == pytest.approx(LR * 0.5)
    assert groups[id(model.backbone.downsample_layers[0][1].weight)]['lr'] == \
        pytest.approx(LR * 0.5 ** 13)
    with pytest.raises(ValueError, match='num_layers=6 disagrees.*num_layers=12'):
        build(model, decay_rate=0.5, num_layers=6)


def test_backbone_without_get_layer_depth_needs_num_layers():
    model = ToyDetector(NoDepthConvNeXt())
    with pytest.raises(ValueError, match='set paramwise_cfg.num_layers'):
        build(model, decay_rate=0.7)
    groups = by_param(build(model, decay_rate=0.7, num_layers=6))
    assert groups[id(model.backbone.stages[2][3].pwconv1.weight)]['lr'] == \
        pytest.approx(LR * 0.7 ** 3)
    with pytest.raises(ValueError, match='outside.*num_layers'):
        build(ToyDetector(NoDepthConvNeXt(depths=(1, 1, 10, 1))), decay_rate=0.7, num_layers=2)


class SpyDepth(ToyConvNeXtDCLS):
    """Records the calls of the constructor and answers with its own ids: stage i and its
    downsample layer -> i, everything else (norms, neck, head) 5, out of 6 ids."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _depth(self, method, param_name, prefix):
        self.calls.append((method, param_name, prefix))
        parts = param_name[len(prefix):].split('.')
        if param_name.startswith(prefix) and parts[0] in ('downsample_layers', 'stages'):
            return int(parts[1]), 6
        return 5, 6

    def get_layer_depth(self, param_name, prefix=''):
        return self._depth('layer', param_name, prefix)

    def get_stage_depth(self, param_name, prefix=''):
        return self._depth('stage', param_name, prefix)


@pytest.mark.parametrize('decay_type,method', [('layer_wise', 'layer'), ('stage_wise', 'stage')])
def test_layer_ids_are_the_models(decay_type, method, monkeypatch):
    """The constructor parses no names when the backbone defines its ids: every parameter's
    id is the backbone method's answer for its full name (neck / head included), and the rule
    is named in the log."""
    messages = []
    monkeypatch.setattr(module, 'print_log', lambda msg, **kw: messages.append(msg))
    monkeypatch.setattr(module, 'convnext_layer_depth', None)  # the fallback must not be used
    model = ToyDetector(SpyDepth())
    groups = by_param(build(model, decay_rate=0.5, decay_type=decay_type))
    bb = model.backbone
    asked = {name for m, name, prefix in bb.calls if m == method and prefix == 'backbone.'}
    assert {n for n, _ in model.named_parameters()} <= asked
    for i in range(4):
        scale = 0.5**(6 - i - 1)
        assert groups[id(bb.stages[i][0].pwconv1.weight)]['lr'] == pytest.approx(LR * scale)
        assert groups[id(bb.downsample_layers[i][1].weight)]['lr'] == pytest.approx(LR * scale)
    assert groups[id(model.head.weight)]['lr'] == pytest.approx(LR)
    assert f'SpyDepth.get_{method}_depth' in messages[0]


def test_fallback_rule_by_name_is_the_backbones(backbone_factory):
    """Without get_layer_depth / get_stage_depth, the documented fallback applies by name the
    function the mmdcls backbone's methods apply: the same groups as the model's own ids."""
    for decay_type in ('layer_wise', 'stage_wise'):
        model = ToyDetector(backbone_factory())
        reference = build(model, decay_rate=0.8, decay_type=decay_type).optimizer.param_groups
        for name in ('get_layer_depth', 'get_stage_depth'):
            setattr(model.backbone, name, None)  # instance attribute hides the method
        fallback = build(
            model, decay_rate=0.8, decay_type=decay_type, num_layers=6).optimizer.param_groups
        assert [(g['group_name'], g['lr'], [id(p) for p in g['params']]) for g in fallback] == \
            [(g['group_name'], g['lr'], [id(p) for p in g['params']]) for g in reference]


def test_non_convnext_backbone_is_refused():
    model = ToyDetector(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)))
    with pytest.raises(ValueError, match='ConvNeXt-layout backbone'):
        build(model, decay_rate=0.7, num_layers=6)


def test_frozen_parameters_left_out():
    model = ToyDetector(ToyConvNeXtDCLS())
    for p in model.backbone.stages[0].parameters():
        p.requires_grad_(False)
    groups = by_param(build(model, decay_rate=0.7))
    assert id(model.backbone.stages[0][0].dwconv.P) not in groups
    assert set(groups) == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize('paramwise, match', [
    (dict(decay_rate=0.7,
          decay_typ='layer_wise'), r"unknown paramwise_cfg key\(s\) \['decay_typ'\]"),
    (dict(decay_type='layer_wise'), 'decay_rate is required'),
    (dict(decay_rate=0.0), r'decay_rate must be a number in \(0, 1\]'),
    (dict(decay_rate=1.5), r'decay_rate must be a number in \(0, 1\]'),
    (dict(decay_rate='0.7'), 'decay_rate must be a number'),
    (dict(decay_rate=0.7, decay_type='block_wise'), "decay_type must be one of"),
    (dict(decay_rate=0.7, num_layers=0), 'num_layers must be a positive int'),
    (dict(decay_rate=0.7, num_layers=6.0), 'num_layers must be a positive int'),
    (dict(decay_rate=0.7, position_lr_mult=-1), 'position_lr_mult must be a number >= 0'),
    (dict(decay_rate=0.7, sigma_lr_mult=True), 'sigma_lr_mult must be a number >= 0'),
])
def test_bad_paramwise_cfg(paramwise, match):
    with pytest.raises(ValueError, match=match):
        DCLSLearningRateDecayOptimizerConstructor(
            dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=WD)), paramwise)


def test_missing_lr_and_no_paramwise_cfg():
    with pytest.raises(ValueError, match='optimizer.lr must be a positive number'):
        DCLSLearningRateDecayOptimizerConstructor(
            dict(optimizer=dict(type='AdamW')), dict(decay_rate=0.7))
    with pytest.raises(ValueError, match='decay_rate is required'):
        DCLSLearningRateDecayOptimizerConstructor(dict(optimizer=dict(type='AdamW', lr=LR)))


def test_groups_logged_once_as_a_table(monkeypatch):
    messages = []
    monkeypatch.setattr(module, 'print_log', lambda msg, **kw: messages.append(msg))
    model = ToyDetector(ToyConvNeXtDCLS())
    wrapper = build(model, decay_rate=0.7)
    assert len(messages) == 1
    text = messages[0]
    groups = wrapper.optimizer.param_groups
    assert f'{len(groups)} parameter groups' in text
    for group in groups:
        assert group['group_name'] in text
    assert 'layer_3_position' in text and 'backbone.stages.2.0.dwconv.P' in text
    assert f'position_lr_mult={DEFAULT_POSITION_LR_MULT}' in text
    assert f'sigma_lr_mult={DEFAULT_SIGMA_LR_MULT}' in text


def test_optimizer_state_round_trip():
    """The groups are deterministic, so a rebuilt optimizer takes the saved state (resume)."""
    torch.manual_seed(0)
    model = ToyDetector(ToyConvNeXtDCLS())
    wrapper = build(model, decay_rate=0.7)
    loss = model(torch.randn(2, 3, 32, 32)).sum()
    wrapper.update_params(loss)
    state = wrapper.state_dict()
    again = build(model, decay_rate=0.7)
    again.load_state_dict(state)
    for g1, g2 in zip(wrapper.optimizer.param_groups, again.optimizer.param_groups):
        assert g1['group_name'] == g2['group_name'] and g1['lr'] == g2['lr']
        for p1, p2 in zip(g1['params'], g2['params']):
            assert p1 is p2
            assert (p1 in wrapper.optimizer.state) == (p2 in again.optimizer.state)
            if p1 in wrapper.optimizer.state:
                assert torch.equal(wrapper.optimizer.state[p1]['exp_avg'],
                                   again.optimizer.state[p2]['exp_avg'])
    assert len(again.optimizer.state) > 50


def test_unreadable_stage_name_is_reported():
    backbone = NoDepthConvNeXt()
    backbone.stages.register_parameter('extra', torch.nn.Parameter(torch.zeros(2, 2)))
    with pytest.raises(ValueError, match=r'cannot read the stage/block of backbone\.stages\.extra'):
        build(ToyDetector(backbone), decay_rate=0.7, num_layers=6)
