"""ConvNeXt-DCLS in ImageNet form, with exactly the released classifier's state dict.

``downsample_layers.*``, ``stages.*``, ``norm.*`` (final LayerNorm after global pooling) and
``head.*``: ``model.load_state_dict(torch.load(path)['model'])`` loads a released checkpoint
strictly, and a checkpoint trained with this class loads downstream with
``init_cfg=dict(type='Pretrained', checkpoint=...)`` on :class:`ConvNeXtDCLS`. The trunk
(stem, stages, shared positions, init, layer ids, checked loading) is the backbone's
(:class:`~mmdcls.models.backbones.ConvNeXtDCLSTrunk`).
"""
import importlib.util

from torch import Tensor, nn

from mmdcls.registry import MODELS
from ..backbones.convnext_dcls_args import check_classifier_args, check_refused
from ..backbones.convnext_dcls_trunk import ConvNeXtDCLSTrunk
from ..utils import LN_EPS


@MODELS.register_module()
class ConvNeXtDCLSClassifier(ConvNeXtDCLSTrunk):
    """Trunk + global average pool + LayerNorm + Linear: (N, 3, H, W) -> (N, num_classes).

    Takes the trunk's arguments (:class:`ConvNeXtDCLSTrunk`; ``arch`` may be positional,
    ``norm_cfg`` is that of the downsample layers) except those of
    :attr:`refused_arguments`, plus ``num_classes`` (default 1000) and ``head_init_scale`` (the
    release's scaling of the head's initial weights and bias, default 1). For frozen stages or
    ``init_cfg``, use :class:`ConvNeXtDCLS` as the backbone of an mmpretrain
    ``ImageClassifier``.
    """
    #: arguments of the backbone form this one refuses, and why
    refused_arguments = dict(
        out_indices='it has no per-stage outputs',
        frozen_stages='it is the release\'s model; freeze with ConvNeXtDCLS as the '
        'backbone of an mmpretrain ImageClassifier',
        init_cfg='load weights with load_state_dict or load_pretrained')

    def __init__(self,
                 *args,
                 num_classes: int = 1000,
                 head_init_scale: float = 1.,
                 **kwargs) -> None:
        check_refused(type(self), kwargs)
        check_classifier_args(dict(num_classes=num_classes))
        super().__init__(*args, **kwargs)
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(self.channels[-1], eps=LN_EPS)
        self.head = nn.Linear(self.channels[-1], num_classes)
        self._release_init(self.head)
        self.head.weight.data.mul_(head_init_scale)
        self.head.bias.data.mul_(head_init_scale)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> pooled, normed features (N, channels[-1])."""
        for _, x in self.forward_stages(x):
            pass  # only the last stage's map feeds the head
        return self.norm(x.mean([-2, -1]))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


TIMM_MODELS = ('tiny', 'small', 'base')


def _register_timm_models() -> None:
    """Registers ``convnext_dcls_{tiny,small,base}`` in timm's model registry (mmdcls-backed).

    ``pretrained=True`` is refused: mmdcls downloads nothing; load the released file with
    ``model.load_state_dict(torch.load(path, weights_only=True)['model'])`` (or
    :func:`mmdcls.models.utils.load_checkpoint_file` when it holds ``args``).
    """
    from timm.models import register_model

    def make(arch):

        def factory(pretrained: bool = False, **kwargs):
            if pretrained:
                raise ValueError(f'convnext_dcls_{arch}: pretrained=True is not supported; '
                                 'load the released checkpoint with load_state_dict')
            for key in ('pretrained_cfg', 'pretrained_cfg_overlay'):
                kwargs.pop(key, None)  # timm's create_model passes these to every factory
            if 'in_chans' in kwargs:
                kwargs['in_channels'] = kwargs.pop('in_chans')
            return ConvNeXtDCLSClassifier(arch, **kwargs)

        factory.__name__ = factory.__qualname__ = f'convnext_dcls_{arch}'
        factory.__module__ = __name__
        factory.__doc__ = f'ConvNeXt-DCLS-{arch[0].upper()} (release layout, mmdcls operator).'
        return register_model(factory)

    for arch in TIMM_MODELS:
        make(arch)


# Not a try/except ImportError: if timm is present, a broken registration must fail loudly.
if importlib.util.find_spec('timm') is not None:
    _register_timm_models()
