"""Convert ConvNeXt(-DCLS) ImageNet checkpoints between mmpretrain and the release's layout.

* mmpretrain -> release: an mmpretrain 1.x checkpoint of ``ImageClassifier`` with
  ``mmdcls.ConvNeXtDCLS`` (``out_norms=False``) + ``mmdcls.ConvNeXtDCLSClsHead``
  (``{'state_dict': ..., 'meta': ..., ...}``) becomes ``{'model': state_dict}`` as released
  (``convnext_dcls_*_1k_224_ema.pth``): loadable by ``ConvNeXtDCLSClassifier.load_state_dict``,
  timm's ``convnext_dcls_*`` through mmdcls, and the release's own code. With ``EMAHook`` the
  ``state_dict`` mmengine saves holds the EMA weights, as the released ``_ema`` files do.
* release -> mmpretrain: ``{'model': ...}`` becomes ``{'state_dict': ..., 'meta': {}}``, which
  mmpretrain's ``tools/test.py`` / ``load_from`` read.

Every key is mapped by :mod:`mmdcls.models.utils.cls_checkpoint`; a key outside the layout
stops the conversion, and the tool prints how many keys each rule took. Training state
(``optimizer``, ``message_hub``, ``ema_state_dict``, the release's ``args``) is not carried
over: the result is a weights file, not a resume point.

DST is written only once the conversion succeeded (through a temporary file renamed onto it)
and never onto SRC.

Usage::

    python tools/model_converters/mmpretrain_to_release.py SRC.pth DST.pth [--to release]

Exit status: 0 after writing DST, 2 when SRC is missing or not a readable checkpoint or DST is
the same file as SRC (one line naming them), 1 on any other error.
"""
import argparse
import sys
from collections import Counter

import torch

from mmdcls.models.utils import extract_state_dict, load_checkpoint_file
from mmdcls.models.utils.cls_checkpoint import (detect_layout, mmpretrain_to_release,
                                                release_to_mmpretrain)
from mmdcls.utils.safe_output import check_outputs, safe_output
from mmdcls.utils.tool_errors import INPUT_ERRORS, report_tool_error

LAYOUTS = ('release', 'mmpretrain')


def _rule_counts(keys):
    """Number of keys per top-level group (``backbone.stages``, ``head.fc``, ``norm``...)."""
    counts = Counter()
    for key in keys:
        parts = key.split('.')
        counts['.'.join(parts[:2]) if parts[0] in ('backbone',
                                                   'head') and len(parts) > 2 else parts[0]] += 1
    return dict(sorted(counts.items()))


def convert(src: str, dst: str, to: str = None) -> dict:
    """Converts the file ``src`` to ``dst``; returns ``{'from', 'to', 'keys', 'groups'}``."""
    check_outputs({'DST': dst}, {'SRC': src})
    state_dict = extract_state_dict(load_checkpoint_file(src), src)
    source = detect_layout(state_dict)
    target = to or ('release' if source == 'mmpretrain' else 'mmpretrain')
    if target not in LAYOUTS:
        raise ValueError(f'--to must be one of {LAYOUTS}, got {target!r}')
    if target == source:
        raise ValueError(f'{src} is already in the {source} layout')
    if target == 'release':
        out = dict(model=mmpretrain_to_release(state_dict))
        converted = out['model']
    else:
        out = dict(state_dict=release_to_mmpretrain(state_dict), meta=dict())
        converted = out['state_dict']
    if len(converted) != len(state_dict):  # the mapping is one to one; guard it anyway
        raise RuntimeError(f'{len(state_dict)} keys in, {len(converted)} out')
    with safe_output(dst) as tmp:
        torch.save(out, tmp)
    return {'from': source, 'to': target, 'keys': len(converted), 'groups': _rule_counts(converted)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmpretrain or release checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--to', choices=LAYOUTS, help='target layout (default: the other one than the source)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = convert(args.src, args.dst, args.to)
    except INPUT_ERRORS as err:
        return report_tool_error('tools/model_converters/mmpretrain_to_release.py', err)
    print(f'{args.src} ({result["from"]}) -> {args.dst} ({result["to"]}): {result["keys"]} '
          f'keys, every one mapped: {result["groups"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
