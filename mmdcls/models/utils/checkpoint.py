"""Loading released ConvNeXt(-DCLS) checkpoints into mmdcls models.

The released ImageNet files are ``{'model': state_dict, 'args': argparse.Namespace, ...}``.
Instead of unpickling them unrestricted, :func:`load_checkpoint_file` allows exactly the extra
types these files contain (``argparse.Namespace``) for the duration of one load, on every torch
mmdcls admits (:func:`mmdcls.utils.compat.load_weights_only`: torch's weights-only unpickler
from torch 2.6, a restricted unpickler before it). A file torch cannot read (empty, truncated,
another format) raises :class:`UnreadableCheckpointError` naming the file and what is wrong with
it (:func:`unreadable_reason`); the tools report it in one line.
"""
import argparse
import os
import re
import zipfile
from collections import OrderedDict, defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from torch import nn

from mmdcls.utils.compat import TORCH_ALLOW_LIST, allowed_for_this_load, load_weights_only

#: the first bytes of a zip archive (torch.save's format) and of a pickle of protocol 2 or
#: later (the legacy format of ``torch.save(..., _use_new_zipfile_serialization=False)``)
ZIP_MAGIC, PICKLE_MAGIC = b'PK\x03\x04', b'\x80'

#: globals the released training scripts pickle next to the weights
RELEASE_SAFE_GLOBALS = (argparse.Namespace, )
_POSITION_KEY = re.compile(r'^stages\.(\d+)\.(\d+)\.dwconv\.(P|SIG)$')


def _load_remote(filename: str, map_location, safe_globals: Sequence) -> dict:
    """``http(s)://`` and the other schemes of mmengine's ``CheckpointLoader``.

    torch >= 2.6: through ``CheckpointLoader`` (its download cache included), whose
    ``torch.load`` is weights-only by default, under the same allow-list. Older torch loads
    unrestricted by default, so the file is fetched with mmengine's file backends and read by
    :func:`load_weights_only` instead."""
    if TORCH_ALLOW_LIST:
        from mmengine.runner import CheckpointLoader
        with allowed_for_this_load(safe_globals):
            return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    from mmengine.fileio import get_local_path
    with get_local_path(filename) as local_path:
        return load_weights_only(local_path, map_location, safe_globals)


class UnreadableCheckpointError(ValueError):
    """A file that is not a readable torch checkpoint: empty, truncated, or another format."""


def _unreadable(filename: str, reason: str) -> UnreadableCheckpointError:
    return UnreadableCheckpointError(f'{filename}: not a readable torch checkpoint: {reason}')


def unreadable_reason(filename: str, error: Optional[BaseException] = None) -> Optional[str]:
    """Why the local file ``filename`` cannot be a readable torch checkpoint, from its size and
    first and last bytes (nothing is unpickled); None when they look sound.

    ``error``, the exception a load raised, tells a damaged archive or a legacy file that ends
    early (torch's stream-reader and end-of-file errors) from other failures, which are not the
    file's fault (a refused global, a missing CUDA device) and give None.
    """
    size = os.path.getsize(filename)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(filename, 'rb') as f:
        head = f.read(16)
    if size < len(ZIP_MAGIC) and ZIP_MAGIC.startswith(head):
        return f'truncated: the first {size} byte(s) of a zip archive'
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(filename):
            return (f'truncated: a zip archive of {size} bytes without its end record (an '
                    'interrupted save or copy?)')
        if isinstance(error, RuntimeError) and ('PytorchStreamReader' in str(error)
                                                or 'inline_container' in str(error)):
            return f'a damaged zip archive, or a zip archive torch did not write ({size} bytes)'
        return None
    if head.startswith(PICKLE_MAGIC):  # the legacy format: one pickle stream after another
        if isinstance(error, EOFError) or 'truncated' in str(error):
            return f'truncated: a legacy (non-zip) torch file that ends early ({size} bytes)'
        return None
    return (f'not a zip archive, the format torch.save writes (it starts with {head!r}; a '
            'download error page or another format?)')


def check_checkpoint_file(filename: str) -> None:
    """Raises ``FileNotFoundError`` or :class:`UnreadableCheckpointError` for a local file that
    cannot be a torch checkpoint, judged by :func:`unreadable_reason` (its size, first and last
    bytes): cheap enough for a tool to run before building anything."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    reason = unreadable_reason(filename)
    if reason is not None:
        raise _unreadable(filename, reason)


def load_checkpoint_file(filename: str,
                         map_location='cpu',
                         safe_globals: Sequence = RELEASE_SAFE_GLOBALS) -> dict:
    """``torch.load`` of tensors, plain containers and ``safe_globals`` only, on every torch.

    Besides ``safe_globals``, the types of :func:`mmdcls.utils.compat.safe_globals_list`
    (mmengine's checkpoint contents) are allowed. Remote paths (``http(s)://`` etc.) go through
    mmengine under the same allow-list. An unpickling error names the offending global and how
    to allow it.

    Raises:
        FileNotFoundError: no such file.
        UnreadableCheckpointError: the file is empty, truncated or not a torch checkpoint
            (:func:`unreadable_reason`); the message names the file and why, the load's own
            error is chained.
        RuntimeError: the file pickles an object outside the allowed types.
    """
    if not isinstance(filename, str):
        raise TypeError(f'checkpoint must be a path string, got {type(filename).__name__}')
    try:
        if '://' in filename:
            return _load_remote(filename, map_location, safe_globals)
        return load_weights_only(filename, map_location, safe_globals)
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint file not found: {filename}') from None
    except Exception as err:  # noqa: BLE001 - re-raised with context, never swallowed
        reason = None if '://' in filename else unreadable_reason(filename, err)
        if reason is not None:
            raise _unreadable(filename, reason) from err
        if 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise RuntimeError(
                f'{filename}: refuses to unpickle an object outside the allowed types '
                f'{[getattr(g, "__qualname__", g) for g in safe_globals]} (weights-only load, '
                f'torch {torch.__version__}). If you trust the file, add the type named below '
                f'to the safe globals of this load.\n{err}') from err
        raise


def extract_state_dict(checkpoint,
                       filename: str = '<checkpoint>',
                       prefix: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a loaded checkpoint file.

    Accepts ``{'state_dict': ...}`` (OpenMMLab), ``{'model': ...}`` (the release, timm) or a
    bare state dict; strips a DistributedDataParallel ``module.`` prefix; with ``prefix``
    (e.g. ``'backbone.'``) keeps only the keys under it, without the prefix.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{filename}: expected a dict, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            state_dict = checkpoint[key]
            break
    else:
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            state_dict = checkpoint
        else:
            raise ValueError(f"{filename}: no 'state_dict' or 'model' entry and not a bare state "
                             f'dict; top-level keys: {sorted(map(str, checkpoint))}')
    state_dict = OrderedDict(state_dict)
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = OrderedDict((k[len('module.'):], v) for k, v in state_dict.items())
    if prefix:
        kept = OrderedDict(
            (k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
        if not kept:
            raise ValueError(f'{filename}: no key starts with prefix {prefix!r}; first keys: '
                             f'{list(state_dict)[:5]}')
        state_dict = kept
    return state_dict


def check_shared_positions(state_dict: Dict[str, torch.Tensor],
                           filename: str = '<checkpoint>') -> None:
    """Raises if per-block positions (``stages.i.j.dwconv.P`` / ``SIG``) differ within a stage.

    A model that shares one position tensor per stage can only hold such a checkpoint if every
    block of a stage stores the same tensor (as the release does).
    """
    groups: Dict[tuple, List[tuple]] = defaultdict(list)
    for key, value in state_dict.items():
        match = _POSITION_KEY.match(key)
        if match:
            groups[(int(match.group(1)), match.group(3))].append((int(match.group(2)), value))
    for (stage, name), blocks in sorted(groups.items()):
        blocks.sort(key=lambda item: item[0])
        first_block, first = blocks[0]
        for block, value in blocks[1:]:
            if value.shape != first.shape or not torch.equal(value, first):
                diff = ((value.float() - first.float()).abs().max().item()
                        if value.shape == first.shape else f'shapes {tuple(value.shape)} vs '
                        f'{tuple(first.shape)}')
                raise ValueError(
                    f'{filename}: stage {stage} stores different dwconv.{name} in blocks '
                    f'{first_block} and {block} (max |diff| {diff}), but the model shares one '
                    f'{name} per stage (share_positions=True); build it with '
                    'share_positions=False to load per-block positions')


def load_state_dict_checked(model: nn.Module,
                            state_dict: Dict[str, torch.Tensor],
                            filename: str = '<checkpoint>',
                            ignorable: Callable[[str], bool] = lambda key: False,
                            new: Callable[[str], bool] = lambda key: False,
                            logger='current') -> Dict[str, List[str]]:
    """Loads ``state_dict`` into ``model``; every key is either loaded, ignorable or an error.

    ``ignorable(key)``: checkpoint keys the model does not have and may drop (logged);
    ``new(key)``: model keys the checkpoint may lack (they keep their initialisation; logged).
    Any other missing / unexpected key, and every shape mismatch, raises one ``ValueError``
    listing them all. Returns ``{'loaded': [...], 'ignored': [...], 'new': [...]}``.
    """
    model_state = model.state_dict()
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
        for k, v in state_dict.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    unexpected = [k for k in state_dict if k not in model_state]
    ignored = [k for k in unexpected if ignorable(k)]
    unexpected = [k for k in unexpected if not ignorable(k)]
    missing = [k for k in model_state if k not in state_dict]
    new_keys = [k for k in missing if new(k)]
    missing = [k for k in missing if not new(k)]
    problems = []
    if mismatched:
        problems.append('shapes differ (another arch, kernel_count, dilated_kernel_size, '
                        'version or dwconv_cfg?):\n    ' + '\n    '.join(mismatched))
    if missing:
        problems.append('missing in the checkpoint:\n    ' + '\n    '.join(_summarise(missing)))
    if unexpected:
        problems.append('not in the model:\n    ' + '\n    '.join(_summarise(unexpected)))
    if problems:
        raise ValueError(f'{filename} does not fit {type(model).__name__}:\n  ' +
                         '\n  '.join(problems))
    loaded = [k for k in state_dict if k in model_state]
    result = model.load_state_dict(OrderedDict((k, state_dict[k]) for k in loaded), strict=False)
    assert not result.unexpected_keys and sorted(result.missing_keys) == sorted(new_keys)
    print_log(
        f'{filename}: loaded {len(loaded)} keys into {type(model).__name__}; ignored '
        f'{len(ignored)} {_summarise(ignored)}; new (kept their initialisation) '
        f'{len(new_keys)} {_summarise(new_keys)}',
        logger=logger)
    return dict(loaded=loaded, ignored=ignored, new=new_keys)


def _summarise(keys: Iterable[str], limit: int = 20) -> List[str]:
    keys = list(keys)
    return keys if len(keys) <= limit else keys[:limit] + [f'... ({len(keys) - limit} more)']
