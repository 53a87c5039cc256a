"""convnext_dcls_args: the argument checks that the constructors and check_config share."""
import copy
import re

import pytest
from torch import nn

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier
from mmdcls.models.backbones.convnext_dcls_args import (DEFAULT_DILATED_KERNEL_SIZE, check_norm_cfg,
                                                        check_trunk_args, constructor_arguments,
                                                        dwconv_layer_cfg, parse_arch,
                                                        parse_out_indices)
from mmdcls.models.utils import DEFAULT_VERSION, LayerNorm2d

TINY8 = dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8])
CONV7 = dict(type='Conv2d', kernel_size=7)


@pytest.mark.parametrize(
    'model_cls,cfg,error,message', [
        (ConvNeXtDCLS, dict(arch=TINY8, version='v0', dwconv_cfg=CONV7), ValueError,
         r"\['version'\] only apply when dwconv_cfg is None"),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3, dilated_kernel_size=16), ValueError,
         r'dilated_kernel_size must be odd and positive .* got \(16, 16\)'),
        (ConvNeXtDCLS, dict(
            arch=TINY8, kernel_count=0), ValueError, 'kernel_count must be a positive int, got 0'),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3, share_positions=1), TypeError,
         'share_positions must be True or False, got 1'),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3,
                            with_cp='yes'), TypeError, 'with_cp must be True or False'),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3,
                            in_channels=0), ValueError, 'in_channels must be a positive int'),
        (ConvNeXtDCLS,
         dict(arch=TINY8, kernel_count=3, norm_cfg=dict(type='LN2d', requires_grad=False)),
         ValueError, r'norm_cfg.requires_grad must be True \(freeze with frozen_stages\)'),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3,
                            norm_cfg=dict(type='GN')), ValueError, 'a GroupNorm needs num_groups'),
        (ConvNeXtDCLS, dict(arch=TINY8, kernel_count=3, norm_cfg=dict(type='LN3x')), ValueError,
         r"norm_cfg.type 'LN3x' is not registered .* e.g. 'LN2d'"),
        (ConvNeXtDCLS, dict(arch=TINY8, dwconv_cfg=dict(
            type='Conv2d', in_channels=8)), ValueError, "dwconv_cfg must not set 'in_channels'"),
        (ConvNeXtDCLS, dict(arch=TINY8, dwconv_cfg=dict(type='mmdcls.NoSuchConv')), ValueError,
         r"dwconv_cfg.type 'mmdcls.NoSuchConv' is not registered .* 'DCLS2d'"),
        (ConvNeXtDCLS,
         dict(
             arch=TINY8,
             kernel_count=3,
             init_cfg=[
                 dict(type='Pretrained', checkpoint='a.pth'),
                 dict(type='Pretrained', checkpoint='b.pth')
             ]), ValueError, 'init_cfg has 2 Pretrained entries'),
        (ConvNeXtDCLSClassifier, dict(arch=TINY8, kernel_count=3, out_indices=(3, )), ValueError,
         r"ConvNeXtDCLSClassifier does not take 'out_indices' \(it has no"),
        (ConvNeXtDCLSClassifier, dict(arch=TINY8, kernel_count=3,
                                      init_cfg=None), ValueError, "does not take 'init_cfg'"),
        (ConvNeXtDCLSClassifier, dict(arch=TINY8, kernel_count=3, num_classes=True), ValueError,
         'num_classes must be a positive int'),
    ],
    ids=[
        'dcls-option-with-dwconv_cfg', 'even-dilated-size', 'kernel_count', 'share_positions',
        'with_cp', 'in_channels', 'norm-requires_grad', 'gn-num_groups', 'norm-type',
        'dwconv-in_channels', 'dwconv-type', 'two-pretrained', 'classifier-out_indices',
        'classifier-init_cfg', 'classifier-num_classes'
    ])
def test_building_and_check_config_raise_the_same_error(model_cls, cfg, error, message):
    with pytest.raises(error, match=message) as built:
        model_cls(**copy.deepcopy(cfg))
    with pytest.raises(error, match=re.escape(str(built.value))):
        model_cls.check_config(copy.deepcopy(cfg))


def test_dcls_options_default_to_the_release():
    args = check_trunk_args(
        constructor_arguments(ConvNeXtDCLS, dict(arch='small')), ConvNeXtDCLS.arch_settings,
        ConvNeXtDCLS.num_stages)
    assert (args.dilated_kernel_size, args.kernel_count, args.version) == ((17, 17), 40, 'v0')
    assert DEFAULT_DILATED_KERNEL_SIZE == 17 and DEFAULT_VERSION == 'v0'
    assert args.dwconv_cfg is None and args.depths == (3, 3, 27, 3)
    rect = check_trunk_args(
        constructor_arguments(ConvNeXtDCLS,
                              dict(arch=TINY8, kernel_count=4, dilated_kernel_size=(9, 5))),
        ConvNeXtDCLS.arch_settings, ConvNeXtDCLS.num_stages)
    assert rect.dilated_kernel_size == (9, 5) and rect.kernel_count == 4


def test_dwconv_cfg_gets_the_padding_that_keeps_the_size():
    assert dwconv_layer_cfg(dict(type='Conv2d', kernel_size=(5, 3))) == dict(
        type='Conv2d', kernel_size=(5, 3), padding=(2, 1))
    # DCLS2d's own default kernel_size (3, the conv it stands in for) gives the padding
    assert dwconv_layer_cfg(dict(type='DCLS2d', dilated_kernel_size=9))['padding'] == 1
    given = dict(type='Conv2d', kernel_size=5, padding='same')
    assert dwconv_layer_cfg(given) == given
    with pytest.raises(ValueError, match='give kernel_size or padding'):
        dwconv_layer_cfg(dict(type=nn.Identity))


def test_norm_cfg_resolves_scoped_and_plain_names():
    assert check_norm_cfg(dict(type='mmdcls.LN2d')) is LayerNorm2d
    assert issubclass(check_norm_cfg(dict(type='SyncBN')), nn.SyncBatchNorm)
    assert check_norm_cfg(dict(type='GN', num_groups=4)) is nn.GroupNorm


def test_arch_and_out_indices_parsing():
    assert parse_arch('tiny', ConvNeXtDCLS.arch_settings, 4)['kernel_count'] == 34
    with pytest.raises(ValueError, match=r"arch\['channels'\] must be 4 positive ints"):
        parse_arch(dict(depths=[1] * 4, channels=[8, 8, 8, 0]), ConvNeXtDCLS.arch_settings, 4)
    with pytest.raises(TypeError, match='arch must be a str or a dict, got list'):
        parse_arch([1, 1, 1, 1], ConvNeXtDCLS.arch_settings, 4)
    assert parse_out_indices(-1, 4) == (3, ) and parse_out_indices([2, 0], 4) == (0, 2)
    with pytest.raises(ValueError, match='out_indices has duplicates'):
        parse_out_indices((1, -3), 4)


def test_constructor_arguments_follow_kwargs_to_the_trunk():
    args = constructor_arguments(ConvNeXtDCLSClassifier, dict(arch='base', num_classes=10))
    assert args['num_classes'] == 10 and args['head_init_scale'] == 1.
    assert args['arch'] == 'base' and args['dilated_kernel_size'] is None
    assert args['norm_cfg'] == dict(type='LN2d', eps=1e-6) and args['in_channels'] == 3
    backbone = constructor_arguments(ConvNeXtDCLS, dict(out_norms=False))
    assert backbone['out_indices'] == (0, 1, 2, 3) and backbone['arch'] == 'tiny'
    assert 'num_classes' not in backbone
    with pytest.raises(TypeError, match=r"ConvNeXtDCLS takes no argument\(s\) \['num_classes'\]"):
        constructor_arguments(ConvNeXtDCLS, dict(num_classes=3))


def test_only_arch_is_positional():
    with pytest.raises(TypeError, match='positional'):
        ConvNeXtDCLSClassifier(TINY8, 10, kernel_count=3)
