"""ConvNeXt-DCLS in ImageNet form, with exactly the released classifier's state dict.

``downsample_layers.*``, ``stages.*``, ``norm.*`` (final LayerNorm after global pooling) and
``head.*``: ``model.load_state_dict(torch.load(path)['model'])`` loads a released checkpoint
strictly, and a checkpoint trained with this class loads downstream with
``init_cfg=dict(type='Pretrained', checkpoint=...)`` on :class:`ConvNeXtDCLS`. The trunk
(stem, stages, shared positions, init, layer ids, checked loading) is the backbone's
(:class:`~mmdcls.models.backbones.ConvNeXtDCLSTrunk`).
"""
import importlib.util
from typing import Union

from torch import Tensor, nn

from mmdcls.registry import MODELS
from ..backbones.convnext_dcls_trunk import ConvNeXtDCLSTrunk


@MODELS.register_module()
class ConvNeXtDCLSClassifier(ConvNeXtDCLSTrunk):
    """Trunk + global average pool + LayerNorm + Linear: (N, 3, H, W) -> (N, num_classes).

    Takes the trunk's arguments (:class:`ConvNeXtDCLS`'s except ``out_indices``,
    ``frozen_stages`` and ``init_cfg``; ``norm_cfg`` is that of the downsample layers) plus
    ``num_classes`` and ``head_init_scale`` (the release's scaling of the head's initial weights
    and bias). For frozen stages or ``init_cfg``, use :class:`ConvNeXtDCLS` as the backbone of
    an mmpretrain ``ImageClassifier``.
    """
    #: backbone arguments this form refuses, and why
    _REFUSED = dict(
        out_indices='it has no per-stage outputs',
        frozen_stages='it is the release\'s model; freeze with ConvNeXtDCLS as the '
        'backbone of an mmpretrain ImageClassifier',
        init_cfg='load weights with load_state_dict or load_pretrained')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 num_classes: int = 1000,
                 head_init_scale: float = 1.,
                 **kwargs) -> None:
        for key, reason in self._REFUSED.items():
            if key in kwargs:
                raise ValueError(f'{type(self).__name__} does not take {key!r} ({reason})')
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        super().__init__(arch, **kwargs)
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(self.channels[-1], eps=1e-6)
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
