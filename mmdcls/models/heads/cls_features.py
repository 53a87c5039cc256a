"""ConvNeXt-DCLS with the un-normalised stage maps as outputs, for a pooling classification head.

The released ImageNet classifier pools the last stage *before* its final LayerNorm
(``stage 3 -> global average pool -> LayerNorm -> Linear``). :class:`ConvNeXtDCLS` normalises
every output map (``norm{i}``, a per-pixel LayerNorm: right for detection / segmentation), and
a per-pixel LayerNorm followed by pooling is not pooling followed by a LayerNorm, so a released
checkpoint would not evaluate identically behind it. This class is :class:`ConvNeXtDCLS`
(same constructor, same ``downsample_layers`` / ``stages`` parameters, same ``init_cfg`` loading,
layer-decay rule and clamping) whose output norms are identities; the pooling, the final
LayerNorm and the Linear live in :class:`mmdcls.models.heads.ConvNeXtDCLSClsHead`.
"""
from torch import nn

from mmdcls.registry import MODELS
from ..backbones import ConvNeXtDCLS


@MODELS.register_module()
class ConvNeXtDCLSNoOutNorm(ConvNeXtDCLS):
    """:class:`ConvNeXtDCLS` whose outputs are the raw stage maps (no ``norm{i}``).

    Input (N, in_channels, H, W); output a tuple with, for each ``i`` in ``out_indices``, the
    stage-``i`` map (N, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2)) before any norm. Its
    state dict is the released classifier's minus ``norm.*`` / ``head.*`` (which the head
    holds), so an mmpretrain checkpoint's ``backbone.*`` loads into a detection / segmentation
    :class:`ConvNeXtDCLS` exactly as a released file does (the output norms are new there).

    Takes :class:`ConvNeXtDCLS`'s arguments; ``norm_cfg`` applies to the downsample layers only.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The parent built norm{i} for the outputs; replacing them keeps its forward (which
        # applies norm{i} to every output) and removes their parameters from the state dict.
        for i in self.out_indices:
            setattr(self, f'norm{i}', nn.Identity())
