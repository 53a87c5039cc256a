"""Building, loading and calling mmdcls's C library (``csrc/*.c``).

It needs only a C compiler (``$CC``, else ``cc``), no torch headers: the library is built in
a few seconds into ``$MMDCLS_CACHE_DIR`` (default ``~/.cache/mmdcls``), keyed by a hash of the
sources, the generated header (:mod:`.generated_header`), flags, compiler and CPU, and loaded
with ctypes; :mod:`.prototypes` declares its entry points. Calls are split over
``torch.get_num_threads()`` OpenMP threads where the compiler has OpenMP.

``MMDCLS_NATIVE`` selects: unset / ``auto``: use it when it builds (one warning otherwise);
``0``: never (pure torch); ``1``: always, raising if it cannot be built.
"""
import ctypes
import hashlib
import os
import os.path as osp
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Optional, Sequence

import torch

from .generated_header import HEADER_NAME, header_text
from .prototypes import REAL_TYPES, declare

ENV_VAR = 'MMDCLS_NATIVE'
CACHE_ENV_VAR = 'MMDCLS_CACHE_DIR'
MODES = ('auto', '0', '1')
#: what the library holds, for messages
CONTENTS = 'fused CPU kernel construction, sparse direct and FFT depthwise convolutions'
_CSRC = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc')
#: the C sources, each compiled once per variant of :data:`.prototypes.REAL_TYPES`
SOURCES = tuple(sorted(name for name in os.listdir(_CSRC) if name.endswith('.c')))
SOURCE_PATHS = tuple(osp.join(_CSRC, name) for name in SOURCES)
# included by the sources: part of the build's cache key
HEADERS = tuple(osp.join(_CSRC, name) for name in sorted(os.listdir(_CSRC)) if name.endswith('.h'))
# the built library's file name in the cache directory: f'{_LIBRARY_NAME}-{key}.so'
_LIBRARY_NAME = 'mmdcls_native'
# Build configurations, tried in order. -ffast-math lets the compiler vectorise expf (through
# glibc's libmvec) and the row reductions; it is given only when compiling, not when linking,
# so crtfastmath.o (flush-to-zero for the whole process) is never linked in. -fopenmp splits
# rows over threads; the library's libgomp.so.1 resolves to the one torch has loaded (same
# soname), so both share one thread pool. The last one is plain portable serial C.
_CONFIGS = (
    (('-O3', '-ffast-math', '-march=native', '-fopenmp'), ('-fopenmp', '-lmvec', '-lm')),
    (('-O3', '-ffast-math', '-fopenmp'), ('-fopenmp', '-lmvec', '-lm')),
    (('-O3', ), ('-lm', )),
)
# Given in every configuration: a function with external linkage must have a prototype, so
# every entry point is checked against its generated declaration (and no other is exported
# unnoticed).
_CHECKS = ('-Werror=missing-prototypes', )

_lock = threading.Lock()
_library = None  # ctypes.CDLL once built
_failure: Optional[str] = None  # why it could not be built


def mode() -> str:
    """``$MMDCLS_NATIVE`` (``'auto'`` when unset); ValueError for any other value."""
    value = os.environ.get(ENV_VAR, '') or 'auto'
    if value not in MODES:
        raise ValueError(f'environment variable {ENV_VAR} must be one of {MODES}, got {value!r}')
    return value


def _cache_dir() -> str:
    root = os.environ.get(CACHE_ENV_VAR) or osp.join(
        os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache'), 'mmdcls')
    return root


def _cpu_signature() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return ''.join(line for line in f if line.startswith(('model name', 'flags')))[:4096]
    except OSError:
        return platform.processor()


def _compile(compiler: str, flags: Sequence[str], libraries: Sequence[str], header: str,
             target: str) -> None:
    with tempfile.TemporaryDirectory(dir=osp.dirname(target)) as tmp:
        with open(osp.join(tmp, HEADER_NAME), 'w') as f:
            f.write(header)
        objects = []
        for source in SOURCE_PATHS:
            for variant in REAL_TYPES.values():
                obj = osp.join(tmp, osp.basename(source)[:-2] + variant.suffix + '.o')
                defines = [f'-D{variant.define}'] if variant.define else []
                command = [compiler, *flags, *_CHECKS, '-fPIC', *defines, '-I', tmp]
                subprocess.run([*command, '-c', source, '-o', obj],
                               check=True,
                               capture_output=True,
                               text=True)
                objects.append(obj)
        library = osp.join(tmp, _LIBRARY_NAME + '.so')
        subprocess.run([compiler, '-shared', *objects, '-o', library, *libraries],
                       check=True,
                       capture_output=True,
                       text=True)
        os.replace(library, target)  # atomic: concurrent builders never see a partial file


def _summary(output: str) -> str:
    """What a failed build reports: the compiler's first error lines, else its output's end."""
    errors = [line.strip()[:300] for line in output.splitlines() if 'error' in line]
    return '\n  '.join(errors[:3]) if errors else output.strip()[-500:]


def _build() -> ctypes.CDLL:
    compiler = os.environ.get('CC') or 'cc'
    if shutil.which(compiler) is None:
        raise RuntimeError(f'no C compiler: {compiler!r} not found (set $CC)')
    header = header_text()
    source = header.encode()
    for path in SOURCE_PATHS + HEADERS:
        with open(path, 'rb') as f:
            source += f.read()
    version = subprocess.run([compiler, '--version'], capture_output=True, text=True).stdout
    errors = []
    for flags, libraries in _CONFIGS:
        key = hashlib.sha256(b'\0'.join([
            source, ' '.join(flags + _CHECKS + libraries).encode(),
            version.encode(),
            platform.machine().encode(),
            _cpu_signature().encode()
        ])).hexdigest()[:16]
        target = osp.join(_cache_dir(), f'{_LIBRARY_NAME}-{key}.so')
        try:
            os.makedirs(_cache_dir(), exist_ok=True)
            if not osp.exists(target):
                _compile(compiler, flags, libraries, header, target)
            library = ctypes.CDLL(target)
        except (subprocess.CalledProcessError, OSError) as error:
            errors.append(
                f'{" ".join(flags)}: {_summary(getattr(error, "stderr", "") or str(error))}')
            continue
        declare(library)
        return library
    raise RuntimeError(f'building the mmdcls C library ({CONTENTS}) failed:\n' + '\n'.join(errors))


def library() -> Optional[ctypes.CDLL]:
    """The loaded library, building it on first call; None when disabled or unbuildable (in
    ``auto`` mode, with one warning saying why)."""
    global _library, _failure
    selected = mode()
    if selected == '0':
        return None
    if _library is None and _failure is None:
        with _lock:
            if _library is None and _failure is None:
                try:
                    _library = _build()
                except RuntimeError as error:
                    _failure = str(error)
                    if selected == 'auto':
                        warnings.warn(f'mmdcls: C library unavailable ({CONTENTS}), using the '
                                      f'torch paths ({_failure})')
    if _library is None and selected == '1':
        raise RuntimeError(f'{ENV_VAR}=1 but the C library ({CONTENTS}) is unavailable: '
                           f'{_failure}')
    return _library


def failure_reason() -> Optional[str]:
    """Why the library could not be built (None if it was not tried or it built)."""
    return _failure


def unavailable_reason() -> str:
    """Why :func:`library` gives None: disabled by ``MMDCLS_NATIVE=0``, or why it could not be
    built."""
    return f'disabled ({ENV_VAR}=0)' if mode() == '0' else str(_failure)


def threads_for(items: int) -> int:
    """OpenMP threads for a call over ``items`` independent pieces of work: at most
    ``torch.get_num_threads()``, at least 1."""
    return max(1, min(torch.get_num_threads(), items))


def call(entry: str, dtype: torch.dtype, *args, threads: int, needed_by: str) -> None:
    """Calls the ``dtype`` variant of C entry point ``entry`` (see :data:`.prototypes.
    ENTRY_POINTS`) with ``args`` on ``threads`` threads: the one path every binding takes.
    RuntimeError naming ``needed_by`` (what needed it) when the library is unavailable,
    MemoryError when the call could not allocate its work buffers."""
    lib = library()
    if lib is None:
        raise RuntimeError(f'{needed_by} is unavailable: the C library is {unavailable_reason()}')
    if getattr(lib, entry + REAL_TYPES[dtype].suffix)(*args, threads):
        raise MemoryError(f'mmdcls: {entry} could not allocate its work buffer')
