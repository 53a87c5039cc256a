"""Convert the ConvNeXt-dcls release's COCO / ADE20K checkpoints for mmdet 3.x / mmseg 1.x.

The release fine-tuned with forks of mmdet 2.x (Mask R-CNN, Cascade Mask R-CNN 4conv1fc) and
mmseg 0.x (UperNet + FCN auxiliary head). Their files are mmcv 1.x runner checkpoints:
``{'meta': {'mmdet_version' | 'mmseg_version', 'CLASSES', ['PALETTE'], 'config', 'env_info',
'epoch', 'iter', ...}, 'state_dict': ..., ['optimizer'], ['amp']}``.

What changes between the toolkit generations for these models:

* parameter names: none. The backbone (``backbone.downsample_layers`` / ``stages`` /
  ``norm{i}``, mmdcls's :class:`ConvNeXtDCLS` layout), mmcv's ``ConvModule`` (``.conv``,
  ``.bn``), FPN (``neck.lateral_convs`` / ``fpn_convs``), ``RPNHead`` (``rpn_conv``,
  ``rpn_cls``, ``rpn_reg``), the bbox heads (``shared_convs``, ``shared_fcs``, ``fc_cls``,
  ``fc_reg``), ``FCNMaskHead`` (``convs``, ``upsample``, ``conv_logits``), ``UPerHead``
  (``psp_modules``, ``bottleneck``, ``lateral_convs``, ``fpn_convs``, ``fpn_bottleneck``,
  ``conv_seg``) and ``FCNHead`` (``convs``, ``conv_cat``, ``conv_seg``) kept their names;
  ``decode_head.conv_seg`` stays. Every key is still checked against these layouts, and a key
  that fits none (another head, an EMA copy, a typo) stops the conversion;
* meta data: ``CLASSES`` / ``PALETTE`` become ``dataset_meta = {'classes', 'palette'}`` (read by
  mmdet 3.x / mmseg 1.x ``init_detector`` / ``init_model`` and visualisers); the training
  state (``optimizer``, ``amp``, ``epoch``, ``iter``, ``hook_msgs``) is dropped, so the result is
  a weights file for ``tools/test.py`` or ``load_from``, never a ``--resume`` point.

DST is written only once the conversion succeeded (through a temporary file renamed onto it)
and never onto SRC.

Usage::

    python tools/model_converters/convnext_dcls_to_mmdcls.py SRC.pth DST.pth [--toolkit mmdet]

Exit status: 0 after writing DST, 2 when SRC is missing or not a readable checkpoint or DST is
the same file as SRC (one line naming them), 1 on any other error.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from mmdcls.models.utils import load_checkpoint_file
from mmdcls.models.utils.checkpoint_filter import BACKBONE_PREFIX, STEM_KEY, detect_layout
from mmdcls.utils.safe_output import check_outputs, safe_output
from mmdcls.utils.tool_errors import INPUT_ERRORS, report_tool_error

_BN = r'(bn|gn)\.(weight|bias|running_mean|running_var|num_batches_tracked)'
_CONV_MODULE = rf'(conv\.(weight|bias)|{_BN})'
_WB = r'(weight|bias)'

#: every parameter / buffer name the released models have, per toolkit (new == old names)
LAYOUTS: Dict[str, List[str]] = {
    'backbone': [
        rf'backbone\.downsample_layers\.\d+\.[01]\.{_WB}',
        rf'backbone\.stages\.\d+\.\d+\.(dwconv\.(weight|bias|P|SIG)|norm\.{_WB}|'
        rf'pwconv[12]\.{_WB}|gamma)',
        rf'backbone\.norm\d+\.{_WB}',
    ],
    'mmdet': [
        rf'neck\.(lateral_convs|fpn_convs)\.\d+\.{_CONV_MODULE}',
        rf'rpn_head\.(rpn_conv|rpn_cls|rpn_reg)\.{_WB}',
        rf'roi_head\.bbox_head(\.\d+)?\.(fc_cls|fc_reg|(shared|cls|reg)_fcs\.\d+)\.{_WB}',
        rf'roi_head\.bbox_head(\.\d+)?\.(shared|cls|reg)_convs\.\d+\.{_CONV_MODULE}',
        rf'roi_head\.mask_head(\.\d+)?\.convs\.\d+\.{_CONV_MODULE}',
        rf'roi_head\.mask_head(\.\d+)?\.(upsample|conv_logits)\.{_WB}',
    ],
    'mmseg': [
        rf'decode_head\.(psp_modules\.\d+\.1|bottleneck|lateral_convs\.\d+|fpn_convs\.\d+|'
        rf'fpn_bottleneck)\.{_CONV_MODULE}',
        rf'decode_head\.conv_seg\.{_WB}',
        rf'auxiliary_head\.(convs\.\d+|conv_cat)\.{_CONV_MODULE}',
        rf'auxiliary_head\.conv_seg\.{_WB}',
    ],
}
#: (old-name pattern, new name) applied before the layout check; the released models need none
#: (see the module docstring), the table is where a future difference goes.
RENAMES: Dict[str, List[Tuple[str, str]]] = {'mmdet': [], 'mmseg': []}
#: top-level entries of an mmcv 1.x checkpoint that carry training state only
TRAINING_STATE_KEYS = ('optimizer', 'amp')


def detect_toolkit(checkpoint: dict) -> str:
    """'mmdet' or 'mmseg' from the meta's version entry, else from the head key names."""
    meta = checkpoint.get('meta') or {}
    found = [t for t in ('mmdet', 'mmseg') if f'{t}_version' in meta]
    keys = checkpoint.get('state_dict', {})
    if not found:
        found = [
            t
            for t, prefix in (('mmdet', ('rpn_head.', 'roi_head.')), ('mmseg', ('decode_head.', )))
            if any(k.startswith(prefix) for k in keys)
        ]
    if len(found) != 1:
        raise ValueError(f'cannot tell whether this is an mmdet or an mmseg checkpoint (meta '
                         f'keys {sorted(meta)}); pass --toolkit')
    return found[0]


def convert_state_dict(state_dict: Dict[str, torch.Tensor],
                       toolkit: str) -> 'OrderedDict[str, torch.Tensor]':
    """Old -> new key names; raises ``KeyError`` listing every key that fits no layout."""
    if toolkit not in RENAMES:
        raise ValueError(f'toolkit must be one of {sorted(RENAMES)}, got {toolkit!r}')
    layouts = [re.compile(p + '$') for p in LAYOUTS['backbone'] + LAYOUTS[toolkit]]
    converted, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        new_key = key
        for pattern, replacement in RENAMES[toolkit]:
            new_key = re.sub(pattern, replacement, new_key)
        if not any(layout.match(new_key) for layout in layouts):
            unknown.append(key)
        converted[new_key] = value
    if unknown:
        raise KeyError(f'{len(unknown)} key(s) fit no known {toolkit} layout of the release '
                       f'(ConvNeXt-DCLS backbone + the release\'s heads); refusing to convert: '
                       f'{unknown[:20]}{" ..." if len(unknown) > 20 else ""}')
    # The same sentinel that mmdcls's loader recognises a whole model by (checkpoint_filter)
    try:
        found = detect_layout(converted)
    except ValueError:
        found = None
    if found != 'model':
        raise KeyError(f'no backbone ({BACKBONE_PREFIX + STEM_KEY} is not a key): not a '
                       'ConvNeXt-dcls detection/segmentation checkpoint')
    return converted


def convert_meta(meta: Optional[dict], toolkit: str, source: str) -> dict:
    """mmcv 1.x runner meta -> mmengine meta with ``dataset_meta``."""
    meta = dict(meta or {})
    new_meta = dict(
        converted_from=dict(
            file=osp.basename(source), toolkit=toolkit, version=meta.get(f'{toolkit}_version')))
    dataset_meta = {}
    if meta.get('CLASSES') is not None:
        dataset_meta['classes'] = tuple(meta['CLASSES'])
    if meta.get('PALETTE') is not None:
        dataset_meta['palette'] = [list(map(int, c)) for c in meta['PALETTE']]
    if dataset_meta:
        new_meta['dataset_meta'] = dataset_meta
    if isinstance(meta.get('config'), str):
        new_meta['original_config'] = meta['config']  # old-style config text, for reference
    return new_meta


def convert(checkpoint: dict,
            toolkit: Optional[str] = None,
            source: str = '<checkpoint>') -> Tuple[dict, List[str]]:
    """Returns the new checkpoint ``{'meta', 'state_dict'}`` and the dropped top-level keys."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        raise ValueError(f"{source}: expected an mmcv checkpoint with a 'state_dict' dict")
    unknown_top = sorted(set(checkpoint) - {'meta', 'state_dict', *TRAINING_STATE_KEYS})
    if unknown_top:
        raise KeyError(f'{source}: unknown top-level entries {unknown_top}; refusing to convert')
    toolkit = toolkit or detect_toolkit(checkpoint)
    state_dict = convert_state_dict(checkpoint['state_dict'], toolkit)
    dropped = [k for k in TRAINING_STATE_KEYS if k in checkpoint]
    return dict(
        meta=convert_meta(checkpoint.get('meta'), toolkit, source), state_dict=state_dict), dropped


def load_old_checkpoint(path: str) -> dict:
    """Weights-only ``torch.load`` on every torch mmdcls admits
    (:func:`mmdcls.models.utils.load_checkpoint_file`). Its allow-list has what mmcv 1.x meta
    data and the release's ``args`` hold: numpy arrays / scalars / dtypes under either numpy's
    spelling (``numpy.core`` from numpy 1.x, ``numpy._core`` from 2.x) and
    ``argparse.Namespace``. An empty, truncated or foreign file raises
    :class:`~mmdcls.models.utils.UnreadableCheckpointError` naming it."""
    return load_checkpoint_file(path, map_location='cpu')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='released mmdet 2.x / mmseg 0.x checkpoint')
    parser.add_argument('dst', help='output checkpoint for mmdet 3.x / mmseg 1.x')
    parser.add_argument(
        '--toolkit',
        choices=sorted(RENAMES),
        help='default: detected from the meta data / head names')
    args = parser.parse_args(argv)
    try:
        check_outputs({'DST': args.dst}, {'SRC': args.src})
        old = load_old_checkpoint(args.src)
    except INPUT_ERRORS as err:
        return report_tool_error('tools/model_converters/convnext_dcls_to_mmdcls.py', err)
    new, dropped = convert(old, args.toolkit, args.src)
    with safe_output(args.dst) as tmp:
        torch.save(new, tmp)
    toolkit = new['meta']['converted_from']['toolkit']
    print(f'{args.src} -> {args.dst}: {len(new["state_dict"])} tensors ({toolkit}); dropped '
          f'training state {dropped or "none"}; classes: '
          f'{len(new["meta"].get("dataset_meta", {}).get("classes", ()))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
