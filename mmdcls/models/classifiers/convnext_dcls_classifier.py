"""ConvNeXt-DCLS in ImageNet form, with exactly the released classifier's state dict.

``downsample_layers.*``, ``stages.*``, ``norm.*`` (final LayerNorm after global pooling) and
``head.*``: ``model.load_state_dict(torch.load(path)['model'])`` loads a released checkpoint
strictly, and a checkpoint trained with this class loads downstream with
``init_cfg=dict(type='Pretrained', checkpoint=...)`` on :class:`ConvNeXtDCLS`.
"""
import importlib.util
from typing import Union

from torch import Tensor, nn

from mmdcls.registry import MODELS
from ..backbones.convnext_dcls import ConvNeXtDCLS


@MODELS.register_module()
class ConvNeXtDCLSClassifier(ConvNeXtDCLS):
    """Backbone + global average pool + LayerNorm + Linear: (N, 3, H, W) -> (N, num_classes).

    Takes :class:`ConvNeXtDCLS`'s arguments (except ``out_indices``, ``norm_cfg`` of the
    outputs and ``init_cfg``) plus ``num_classes`` and ``head_init_scale`` (the release's scaling
    of the head's initial weights and bias).
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', num_classes: int = 1000,
                 head_init_scale: float = 1., **kwargs) -> None:
        for key in ('out_indices', 'init_cfg'):
            if key in kwargs:
                raise ValueError(f'{type(self).__name__} does not take {key!r} (it has no '
                                 'per-stage outputs; load weights with load_state_dict)')
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        self.num_classes = num_classes
        # Only the last stage feeds the head; it gets the final norm / head below instead of
        # an output norm (see _build_out_norms).
        super().__init__(arch, out_indices=(3,), **kwargs)
        self.norm = nn.LayerNorm(self.channels[-1], eps=1e-6)
        self.head = nn.Linear(self.channels[-1], num_classes)
        self._release_init(self.head)
        self.head.weight.data.mul_(head_init_scale)
        self.head.bias.data.mul_(head_init_scale)

    def _build_out_norms(self, norm_cfg: dict) -> None:
        pass  # the released classifier has no norm{i}

    def _frozen_modules(self):
        yield from super()._frozen_modules()  # norm{i} do not exist: only stages

    def _ignorable_key(self, key: str) -> bool:
        return False

    def _new_key(self, key: str) -> bool:
        return False

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> pooled, normed features (N, channels[-1])."""
        for i in range(self.num_stages):
            x = self.stages[i](self.downsample_layers[i](x))
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
