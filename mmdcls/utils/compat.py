"""The one place for what the pinned OpenMMLab stack needs on torch 2.13 / numpy 2.

Nothing here patches site-packages; every fix is applied at runtime by
:func:`register_safe_globals`, which ``import mmdcls`` calls (idempotent).

Known incompatibilities and their fixes
---------------------------------------
1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine 0.10.7 calls
   it without ``weights_only`` (``mmengine.runner.checkpoint.load_from_local`` / ``load_url``:
   ``Runner.resume``, ``load_from``, ``init_cfg=dict(type='Pretrained')``). Its own checkpoints
   pickle, besides tensors and plain containers:

   - ``message_hub.log_scalars``: ``mmengine.logging.HistoryBuffer`` objects whose state holds
     numpy arrays and, through ``HistoryBuffer.__getstate__``, the statistics functions
     ``HistoryBuffer.min/max/current/mean``, which pickle writes as
     ``builtins.getattr(HistoryBuffer, 'min')``;
   - ``message_hub.runtime_info['eta']`` and similar: numpy scalars
     (``numpy._core.multiarray.scalar`` + ``numpy.dtype`` + its ``numpy.dtypes.*DType`` class);
   - numpy arrays (``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``).

   Without a fix, resuming fails with ``Unsupported global: GLOBAL
   mmengine.logging.history_buffer.HistoryBuffer``. The fix allow-lists exactly these types with
   ``torch.serialization.add_safe_globals`` (``weights_only`` stays on everywhere). ``getattr``
   is *not* allow-listed: the name ``builtins.getattr`` is bound to
   :func:`_history_buffer_getattr`, which resolves only ``HistoryBuffer``'s four default
   statistics methods and refuses anything else. The numpy 1.x spellings
   (``numpy.core.multiarray.*``) are registered as well, so checkpoints written under numpy 1.x
   (e.g. OpenMMLab model-zoo files) keep loading.

2. The released ConvNeXt-dcls checkpoints store the training script's ``args``
   (an ``argparse.Namespace`` of plain values) next to ``model``; ``argparse.Namespace`` is
   allow-listed so that ``init_cfg=dict(type='Pretrained', checkpoint=...)`` can read them.
   Its unpickling only sets attributes on a fresh ``Namespace``.
"""
import argparse
import pickle

import numpy as np
import torch

__all__ = ['register_safe_globals', 'safe_globals_list']

# HistoryBuffer's statistics methods that mmengine itself registers (``_set_default_statistics``).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

# numpy dtypes whose instances may appear in a checkpoint (array / scalar dtypes). Object and
# string dtypes are left out on purpose: nothing mmengine writes needs them.
_NUMPY_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                 np.uint64, np.float16, np.float32, np.float64, np.longdouble, np.complex64,
                 np.complex128)

def _history_buffer_getattr(obj, name):
    """``builtins.getattr`` as seen by torch's weights-only unpickler.

    Only ``getattr(HistoryBuffer, <default statistics method>)`` is answered, which is what
    ``HistoryBuffer.__getstate__`` writes; anything else raises ``pickle.UnpicklingError``.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'mmdcls allows getattr in weights-only checkpoints only for HistoryBuffer.'
        f'{{{", ".join(_HISTORY_BUFFER_METHODS)}}}, got getattr({obj!r}, {name!r})')


def safe_globals_list():
    """The entries :func:`register_safe_globals` adds, as accepted by ``add_safe_globals``.

    Returns:
        list: classes/functions, or ``(object, 'module.qualname')`` pairs for names that differ
        from the object's own (numpy 1.x paths, ``builtins.getattr``).
    """
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray  # numpy 1.x
    entries = [np.ndarray, np.dtype, argparse.Namespace]
    # Checkpoints spell the module as numpy wrote it: numpy._core (2.x) or numpy.core (1.x).
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    entries += [type(np.dtype(t)) for t in _NUMPY_DTYPES]
    try:
        from mmengine.logging import HistoryBuffer
    except ImportError:  # mmdcls.ops is usable without OpenMMLab; nothing of mmengine to load
        pass
    else:
        entries += [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')]
    return entries


def register_safe_globals():
    """Allow-list, for ``torch.load(weights_only=True)``, what mmengine checkpoints contain.

    Idempotent: adds only the entries not allow-listed at the time of the call (so it also
    restores them after something removed them, e.g. leaving a ``torch.serialization.
    safe_globals`` context); a no-op on torch versions without ``add_safe_globals`` (< 2.4, where
    ``weights_only`` defaults to False anyway).

    Returns:
        bool: True if this call added entries, False if all were there or it is unsupported.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    registered = torch.serialization.get_safe_globals()
    missing = [entry for entry in safe_globals_list() if entry not in registered]
    if missing:
        add_safe_globals(missing)
    return bool(missing)
