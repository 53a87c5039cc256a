"""The one place for what the OpenMMLab stack needs from ``torch.load`` on every admitted torch.

Nothing here patches site-packages. Two tools:

* :func:`register_safe_globals` (``import mmdcls`` calls it, idempotent) allow-lists, process
  wide, what mmengine checkpoints contain, so that mmengine's own ``torch.load`` calls keep
  working where torch loads ``weights_only=True`` by default (torch >= 2.6).
* :func:`load_weights_only` is the ``torch.load`` of the files mmdcls opens itself (released
  checkpoints, the converters): only tensors, plain containers and an explicit allow-list are
  unpickled, on every torch mmdcls admits (>= 2.1), whatever the torch default is.

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

3. torch < 2.6 (mmdcls admits 2.1 and later, the torch of the official mmcv 2.1.0 wheels):
   ``add_safe_globals`` is missing (< 2.4) or takes no ``(object, name)`` pairs (2.4, 2.5), and
   ``torch.load`` is not weights-only by default. :func:`register_safe_globals` steps aside there
   (mmengine's loads are unrestricted by torch's default, so they need nothing), and
   :func:`load_weights_only` unpickles through a restricted ``pickle.Unpickler`` whose
   ``find_class`` resolves only torch's own weights-only globals plus the same allow-list:
   an arbitrary pickled object is refused with the same ``Unsupported global`` error as on
   newer torch.
"""
import argparse
import codecs
import contextlib
import pickle
import re
import types
from typing import Any, Dict, Iterable, Iterator, Sequence

import _compat_pickle
import numpy as np
import torch

__all__ = [
    'register_safe_globals', 'safe_globals_list', 'load_weights_only', 'allowed_for_this_load',
    'TORCH_ALLOW_LIST'
]


def _torch_version() -> tuple:
    """(major, minor) of the running torch ('2.1.2+cu121' -> (2, 1))."""
    match = re.match(r'(\d+)\.(\d+)', torch.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


#: torch >= 2.6: ``torch.load`` is weights-only by default and its allow-list
#: (``add_safe_globals``) takes the ``(object, 'module.name')`` pairs :func:`safe_globals_list`
#: needs. Older torch goes through the restricted unpickler of :func:`load_weights_only`.
TORCH_ALLOW_LIST = _torch_version() >= (2, 6)

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
    safe_globals`` context). A no-op before torch 2.6 (see :data:`TORCH_ALLOW_LIST`): there
    ``torch.load`` is not weights-only by default, so mmengine's loads need no allow-list, and
    mmdcls's own loads go through :func:`load_weights_only`.

    Returns:
        bool: True if this call added entries, False if all were there or it is unsupported.
    """
    if not TORCH_ALLOW_LIST:
        return False
    registered = torch.serialization.get_safe_globals()
    missing = [entry for entry in safe_globals_list() if entry not in registered]
    if missing:
        torch.serialization.add_safe_globals(missing)
    return bool(missing)


def _entry_name(entry) -> str:
    """The ``module.qualname`` under which a checkpoint names an allow-list entry."""
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


@contextlib.contextmanager
def allowed_for_this_load(entries: Sequence) -> Iterator[None]:
    """Allow-lists ``entries`` for the ``torch.load(weights_only=True)`` calls in its body.

    torch >= 2.6 only (:data:`TORCH_ALLOW_LIST`). Adds only the entries not allow-listed yet:
    leaving ``torch.serialization.safe_globals`` removes its entries again, which would undo a
    process-wide registration (:func:`register_safe_globals`) of the same types."""
    registered = torch.serialization.get_safe_globals()
    missing = [entry for entry in entries if entry not in registered]
    with torch.serialization.safe_globals(missing):
        yield


def _restricted_pickle_module(allowed: Dict[str, Any]) -> types.SimpleNamespace:
    """A ``pickle_module`` for ``torch.load`` whose unpickler resolves only ``allowed`` names.

    ``find_class`` is where pickle resolves every global (GLOBAL, STACK_GLOBAL, INST, OBJ,
    extension codes): restricting it is how the ``pickle`` documentation restricts unpickling.
    Nothing else can create objects, so only allowed callables are ever called.
    """

    class RestrictedUnpickler(pickle.Unpickler):

        def find_class(self, module, name):
            # protocol-2 pickles (torch.save's default) spell builtins as __builtin__ etc.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            try:
                return allowed[f'{module}.{name}']
            except KeyError:
                raise pickle.UnpicklingError(
                    f'Unsupported global: GLOBAL {module}.{name} was not an allowed global '
                    f'(mmdcls weights-only load on torch {torch.__version__}: tensors, plain '
                    'containers and the allow-list only)') from None

    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    return types.SimpleNamespace(
        __name__='mmdcls.utils.compat.weights_only_pickle',
        Unpickler=RestrictedUnpickler,
        load=load)


def _torch_weights_only_globals() -> Dict[str, Any]:
    """torch's own weights-only allow-list (tensors, storages, dtypes, rebuild functions), and
    ``_codecs.encode``, which newer torch allows too: protocol-2 pickles write ``bytes`` (e.g.
    numpy array data) as ``_codecs.encode(str, 'latin1')``."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    allowed['_codecs.encode'] = codecs.encode
    return allowed


def load_weights_only(f, map_location='cpu', extra_globals: Iterable = ()) -> Any:
    """``torch.load`` that unpickles only tensors, plain containers and allow-listed globals,
    on every torch mmdcls admits.

    Args:
        f: path or binary file object, as for ``torch.load``.
        map_location: as for ``torch.load``.
        extra_globals: classes / functions, or ``(object, 'module.qualname')`` pairs, allowed
            for this load in addition to :func:`safe_globals_list` (e.g. ``argparse.Namespace``
            is in it already).

    Returns:
        The loaded object.

    Raises:
        pickle.UnpicklingError: the file pickles a global outside the allow-list; the message
            starts ``Unsupported global: GLOBAL <module>.<name>`` on every torch version.
    """
    entries = list(safe_globals_list()) + list(extra_globals)
    if TORCH_ALLOW_LIST:
        with allowed_for_this_load(entries):
            return torch.load(f, map_location=map_location, weights_only=True)
    allowed = _torch_weights_only_globals()
    allowed.update(
        (_entry_name(entry), entry[0] if isinstance(entry, tuple) else entry) for entry in entries)
    return torch.load(
        f,
        map_location=map_location,
        weights_only=False,
        pickle_module=_restricted_pickle_module(allowed))
