"""Fused CPU construction of 2-D DCLS kernels, a direct and an FFT depthwise convolution: a
small C library compiled on first use.

The torch construction (:mod:`mmdcls.ops.construct`) is exact but memory-bound: every
``max`` / ``gauss`` step is a pass over (rows, kernel_count, size) profile tensors, and the
bilinear scatter goes through index tensors. ``csrc/construct_2d.c`` does the same arithmetic
row by row in a work buffer that stays in cache, for float32 and float64 CPU tensors and
2-D kernels (the ConvNeXt / ResNet case); 1-D / 3-D kernels, other devices and dtypes, JIT
traces and ``torch.compile`` graphs use the torch path.

``csrc/depthwise_2d.c`` is a register-blocked direct depthwise convolution (stride 1, zero
padding) over each kernel's non-zero taps, and its kernel gradient; ``conv_backend``'s
``'native'`` algorithm uses them, in training and inference (see there).
``csrc/depthwise_fft_2d.c`` is the depthwise FFT convolution of ``conv_backend``'s ``'fft'``
algorithm: 2-D transforms vectorised across channels (:func:`depthwise_fft_spectra`,
:func:`depthwise_fft_filter`, :func:`depthwise_fft_grad_kernel`).

It needs only a C compiler (``$CC``, else ``cc``), no torch headers: the library is built in
about a second into ``$MMDCLS_CACHE_DIR`` (default ``~/.cache/mmdcls``), keyed by a hash of the
source, flags, compiler and CPU, and loaded with ctypes. Rows are split over
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
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .torch_compat import is_autocast_enabled, is_compiling

ENV_VAR = 'MMDCLS_NATIVE'
CACHE_ENV_VAR = 'MMDCLS_CACHE_DIR'
MODES = ('auto', '0', '1')
SOURCES = tuple(osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', name)
                for name in ('construct_2d.c', 'depthwise_2d.c', 'depthwise_fft_2d.c'))
# included by the sources: part of the build's cache key
HEADERS = tuple(osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', name)
                for name in ('real_vec.h', ))
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
_TYPES = {torch.float32: ('_f32', (), ctypes.c_float),
          torch.float64: ('_f64', ('-DREAL_IS_DOUBLE', ), ctypes.c_double)}
_VERSION_CODES = {'gauss': 0, 'max': 1, 'v0': 0, 'v1': 1}
# rows per thread below which splitting a call over threads costs more than it saves
_MIN_ROWS_PER_THREAD = 16

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
            return ''.join(line for line in f if line.startswith(('model name', 'flags'))
                           )[:4096]
    except OSError:
        return platform.processor()


def _compile(compiler: str, flags: Sequence[str], libraries: Sequence[str],
             target: str) -> None:
    with tempfile.TemporaryDirectory(dir=osp.dirname(target)) as tmp:
        objects = []
        for source in SOURCES:
            for suffix, defines, _ in _TYPES.values():
                obj = osp.join(tmp, osp.basename(source)[:-2] + suffix + '.o')
                subprocess.run([compiler, *flags, '-fPIC', *defines, '-c', source, '-o', obj],
                               check=True, capture_output=True, text=True)
                objects.append(obj)
        library = osp.join(tmp, 'construct.so')
        subprocess.run([compiler, '-shared', *objects, '-o', library, *libraries], check=True,
                       capture_output=True, text=True)
        os.replace(library, target)  # atomic: concurrent builders never see a partial file


def _build() -> ctypes.CDLL:
    compiler = os.environ.get('CC') or 'cc'
    if shutil.which(compiler) is None:
        raise RuntimeError(f'no C compiler: {compiler!r} not found (set $CC)')
    source = b''
    for path in SOURCES + HEADERS:
        with open(path, 'rb') as f:
            source += f.read()
    version = subprocess.run([compiler, '--version'], capture_output=True, text=True).stdout
    errors = []
    for flags, libraries in _CONFIGS:
        key = hashlib.sha256(b'\0'.join(
            [source, ' '.join(flags + libraries).encode(), version.encode(),
             platform.machine().encode(), _cpu_signature().encode()])).hexdigest()[:16]
        target = osp.join(_cache_dir(), f'construct_2d-{key}.so')
        try:
            os.makedirs(_cache_dir(), exist_ok=True)
            if not osp.exists(target):
                _compile(compiler, flags, libraries, target)
            library = ctypes.CDLL(target)
        except (subprocess.CalledProcessError, OSError) as error:
            detail = getattr(error, 'stderr', '') or str(error)
            errors.append(f'{" ".join(flags)}: {detail.strip()[-500:]}')
            continue
        _declare(library)
        return library
    raise RuntimeError('building the DCLS construction library failed:\n' + '\n'.join(errors))


def _declare(library: ctypes.CDLL) -> None:
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, _, real in _TYPES.values():
        shape = [i64, i32, i32, i32, i32, i32, real, real]
        getattr(library, 'dense_forward' + suffix).argtypes = (
            [ptr] * 5 + shape + [real, i32, i32])
        getattr(library, 'dense_backward' + suffix).argtypes = (
            [ptr] * 8 + shape + [real, i32, i32])
        getattr(library, 'bilinear_forward' + suffix).argtypes = (
            [ptr] * 3 + shape + [i32, i32])
        getattr(library, 'bilinear_backward' + suffix).argtypes = (
            [ptr] * 5 + shape + [i32, i32])
        getattr(library, 'depthwise_forward' + suffix).argtypes = (
            [ptr] * 4 + [i64] + [i32] * 8)
        getattr(library, 'depthwise_grad_kernel' + suffix).argtypes = (
            [ptr] * 3 + [i64] + [i32] * 8)
        getattr(library, 'depthwise_fft_spectra' + suffix).argtypes = (
            [ptr] * 2 + [i64] + [i32] * 5)
        getattr(library, 'depthwise_fft_filter' + suffix).argtypes = (
            [ptr] * 6 + [i64] * 2 + [i32] * 12)
        getattr(library, 'depthwise_fft_grad_kernel' + suffix).argtypes = (
            [ptr] * 5 + [i64] * 2 + [i32] * 11)


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
                        warnings.warn(f'mmdcls: C library unavailable (fused CPU construction, '
                                      f'direct and FFT depthwise convs), using the torch paths '
                                      f'({_failure})')
    if _library is None and selected == '1':
        raise RuntimeError(f'{ENV_VAR}=1 but the C library (fused CPU construction, native '
                           f'depthwise conv) is unavailable: {_failure}')
    return _library


def _checked_library(name: str) -> ctypes.CDLL:
    """The library, or RuntimeError naming ``name`` (what needed it) and why it is missing."""
    lib = library()
    if lib is None:
        raise RuntimeError(f'{name} is unavailable: {_failure}')
    return lib


def usable(weight: Tensor, sizes: Tuple[int, ...]) -> bool:
    """Whether the fused construction (:func:`dense_forward`, :func:`bilinear_forward`)
    handles these parameters: a 2-D kernel, float32 / float64 CPU tensors, eager mode (not JIT
    tracing or ``torch.compile``), library available."""
    return (len(sizes) == 2 and weight.device.type == 'cpu' and weight.dtype in _TYPES
            and not torch.jit.is_tracing() and not is_compiling()
            and library() is not None)


def _run(name: str, dtype: torch.dtype, rows: int, args: list) -> None:
    """Calls ``name`` over all rows on up to ``torch.get_num_threads()`` threads."""
    suffix = _TYPES[dtype][0]
    threads = max(1, min(torch.get_num_threads(), rows // _MIN_ROWS_PER_THREAD))
    if getattr(_library, name + suffix)(*args, threads):
        raise MemoryError(f'mmdcls: {name} could not allocate its work buffer')


def _layout(P: Tensor, sizes: Tuple[int, int], component_of_axis: Sequence[int]) -> list:
    kernel_count = P.shape[-1]
    rows = P.numel() // (2 * kernel_count)
    comp0, comp1 = component_of_axis
    return [rows, kernel_count, sizes[0], sizes[1], comp0, comp1,
            float(sizes[comp0] // 2), float(sizes[comp1] // 2)]


# Saved axis-1 profiles (see dense_forward) at most this many kernel sizes: bounds the memory
# a layer holds between forward and backward (1.2x for the release's gauss 23x23 / 26).
SAVED_PROFILES_MAX_RATIO = 1.5


def saved_profiles_size(sizes: Tuple[int, int], kernel_count: int, dtype: torch.dtype) -> int:
    """Scalars per kernel row of the axis-1 profiles dense_forward can save: padded profiles
    (whole 32-byte vectors) and their sums."""
    lanes = 32 // dtype.itemsize
    return kernel_count * (-(-sizes[1] // lanes) * lanes + 1)


def dense_forward(weight: Tensor, P: Tensor, SIG: Tensor, sizes: Tuple[int, int],
                  component_of_axis: Sequence[int], sig_floor: float, version: str,
                  save_profiles: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """``max`` / ``gauss`` kernel (*rows, S0, S1) from contiguous weight (*rows, K), P and SIG
    (2, *rows, K); ``component_of_axis[a]``: the P component giving kernel axis ``a``.
    ``save_profiles``: also return the axis-1 profiles for :func:`dense_backward` (which then
    evaluates only axis 0's), else None."""
    rows = weight.numel() // weight.shape[-1]
    kernel = weight.new_empty((*weight.shape[:-1], *sizes))
    saved = None
    if save_profiles:
        saved = weight.new_empty(rows * saved_profiles_size(sizes, weight.shape[-1],
                                                            weight.dtype))
        if saved.data_ptr() % 32:  # the C code reads it as 32-byte vectors
            raise RuntimeError(f'mmdcls: profile buffer at {saved.data_ptr():#x} is not '
                               f'32-byte aligned')
    _run('dense_forward', weight.dtype, rows,
         [weight.data_ptr(), P.data_ptr(), SIG.data_ptr(), kernel.data_ptr(),
          None if saved is None else saved.data_ptr(),
          *_layout(P, sizes, component_of_axis), float(sig_floor), _VERSION_CODES[version]])
    return kernel, saved


def dense_backward(weight: Tensor, P: Tensor, SIG: Tensor, grad_kernel: Tensor,
                   sizes: Tuple[int, int], component_of_axis: Sequence[int], sig_floor: float,
                   version: str, saved: Optional[Tensor] = None
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients (weight, P, SIG) of :func:`dense_forward` from contiguous d loss / d kernel;
    ``saved``: the profiles it returned, if any."""
    grads = [torch.empty_like(t) for t in (weight, P, SIG)]
    _run('dense_backward', weight.dtype, weight.numel() // weight.shape[-1],
         [weight.data_ptr(), P.data_ptr(), SIG.data_ptr(), grad_kernel.data_ptr(),
          None if saved is None else saved.data_ptr(),
          *(g.data_ptr() for g in grads), *_layout(P, sizes, component_of_axis),
          float(sig_floor), _VERSION_CODES[version]])
    return tuple(grads)


def bilinear_forward(weight: Tensor, P: Tensor, sizes: Tuple[int, int],
                     component_of_axis: Sequence[int], version: str) -> Tensor:
    """``v0`` / ``v1`` kernel (*rows, S0, S1) from contiguous weight (*rows, K) and P
    (2, *rows, K)."""
    rows = weight.numel() // weight.shape[-1]
    kernel = weight.new_empty((*weight.shape[:-1], *sizes))
    _run('bilinear_forward', weight.dtype, rows,
         [weight.data_ptr(), P.data_ptr(), kernel.data_ptr(),
          *_layout(P, sizes, component_of_axis), _VERSION_CODES[version]])
    return kernel


def bilinear_backward(weight: Tensor, P: Tensor, grad_kernel: Tensor, sizes: Tuple[int, int],
                      component_of_axis: Sequence[int], version: str) -> Tuple[Tensor, Tensor]:
    """Gradients (weight, P) of :func:`bilinear_forward` from contiguous d loss / d kernel."""
    grads = [torch.empty_like(t) for t in (weight, P)]
    _run('bilinear_backward', weight.dtype, weight.numel() // weight.shape[-1],
         [weight.data_ptr(), P.data_ptr(), grad_kernel.data_ptr(),
          *(g.data_ptr() for g in grads), *_layout(P, sizes, component_of_axis),
          _VERSION_CODES[version]])
    return tuple(grads)


def depthwise_usable(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                     stride: Sequence[int], groups: int) -> bool:
    """Whether the direct (:func:`depthwise_conv2d`, :func:`depthwise_grad_kernel`) and FFT
    (:func:`depthwise_fft_filter`, ...) depthwise convolutions handle this convolution: 2-D,
    depthwise (C_out == C_in == groups), stride 1, float32 / float64 CPU tensors of one dtype,
    outside autocast (F.conv would compute in the autocast dtype), eager mode, library
    available."""
    return (kernel.dim() == 4 and input.dim() == 4 and kernel.shape[1] == 1
            and not is_autocast_enabled(input.device.type)
            and kernel.shape[0] == input.shape[1] == groups and tuple(stride) == (1, 1)
            and input.device.type == 'cpu' and input.dtype in _TYPES
            and kernel.dtype == input.dtype and (bias is None or bias.dtype == input.dtype)
            and not torch.jit.is_tracing() and not is_compiling()
            and library() is not None)


def depthwise_conv2d(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                     padding: Sequence[int]) -> Tensor:
    """Depthwise stride-1 correlation of input (N, C, H, W) zero-padded by ``padding`` with
    kernel (C, 1, kh, kw) over its non-zero taps, plus bias: (N, C, OH, OW), as
    ``F.conv2d(input, kernel, bias, 1, padding, 1, C)``; no autograd (conv_backend's
    ``'native'`` algorithm wraps it with its gradients; see :func:`depthwise_usable`)."""
    input, kernel = input.contiguous(), kernel.contiguous()
    n, c, h, w = input.shape
    kh, kw = kernel.shape[2:]
    ph, pw = padding
    out = input.new_empty((n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1))
    if out.numel() == 0:
        return out
    lib = _checked_library('the native depthwise convolution')
    suffix = _TYPES[input.dtype][0]
    bias_ptr = None if bias is None else bias.contiguous().data_ptr()
    threads = max(1, min(torch.get_num_threads(), n * c))
    if getattr(lib, 'depthwise_forward' + suffix)(
            input.data_ptr(), kernel.data_ptr(), bias_ptr, out.data_ptr(), n, c, h, w, kh, kw,
            ph, pw, threads):
        raise MemoryError('mmdcls: depthwise_forward could not allocate its work buffer')
    return out


def depthwise_grad_kernel(input: Tensor, grad_output: Tensor, kernel_size: Sequence[int],
                          padding: Sequence[int]) -> Tensor:
    """d loss / d kernel (C, 1, kh, kw) of :func:`depthwise_conv2d` from its input
    (N, C, H, W) and d loss / d output (N, C, OH, OW)."""
    input, grad_output = input.contiguous(), grad_output.contiguous()
    n, c, h, w = input.shape
    kh, kw = kernel_size
    grad_kernel = input.new_empty((c, 1, kh, kw))
    lib = _checked_library('the native depthwise convolution')
    threads = max(1, min(torch.get_num_threads(), c))
    if getattr(lib, 'depthwise_grad_kernel' + _TYPES[input.dtype][0])(
            input.data_ptr(), grad_output.data_ptr(), grad_kernel.data_ptr(), n, c, h, w, kh,
            kw, padding[0], padding[1], threads):
        raise MemoryError('mmdcls: depthwise_grad_kernel could not allocate its work buffer')
    return grad_kernel


# ------------------------------------------------------------------ FFT depthwise convolution
def _fft_group(dtype: torch.dtype) -> int:
    """Channels per complex transform of csrc/depthwise_fft_2d.c: two 32-byte vectors."""
    return 2 * 32 // dtype.itemsize


def _check_lengths(lengths: Sequence[int]) -> Tuple[int, int]:
    """The transform lengths (L0, L1): positive, with no prime factor but 2, 3 and 5 (the
    radices of csrc/depthwise_fft_2d.c; conv_backend.fft_lengths gives such)."""
    lengths = tuple(lengths)
    for length in lengths:
        rest = length if isinstance(length, int) and length > 0 else 0
        for p in (2, 3, 5):
            while rest and rest % p == 0:
                rest //= p
        if len(lengths) != 2 or rest != 1:
            raise ValueError(f'lengths must be two positive ints with no prime factor other '
                             f'than 2, 3 and 5, got {lengths}')
    return lengths


def _aligned(tensor: Tensor, what: str) -> Tensor:
    if tensor.data_ptr() % 32:  # the C code reads it as 32-byte vectors
        raise RuntimeError(f'mmdcls: {what} at {tensor.data_ptr():#x} is not 32-byte aligned')
    return tensor


def depthwise_fft_spectra(kernel: Tensor, lengths: Sequence[int]) -> Tensor:
    """The spectra of depthwise ``kernel`` (C, 1, kh, kw) for :func:`depthwise_fft_filter`
    with transform ``lengths`` (L0, L1) (2-3-5-smooth): an opaque float tensor
    (ceil(C / group), L0, L1 // 2 + 1, 2, 2, lanes) of the kernel's dtype."""
    kernel = kernel.contiguous()
    c, _, kh, kw = kernel.shape
    L0, L1 = lengths = _check_lengths(lengths)
    lanes = 32 // kernel.element_size()
    groups = -(-c // _fft_group(kernel.dtype))
    spectra = _aligned(kernel.new_empty((groups, L0, L1 // 2 + 1, 2, 2, lanes)), 'spectra')
    lib = _checked_library('the FFT depthwise convolution')
    threads = max(1, min(torch.get_num_threads(), groups))
    if getattr(lib, 'depthwise_fft_spectra' + _TYPES[kernel.dtype][0])(
            kernel.data_ptr(), spectra.data_ptr(), c, kh, kw, L0, L1, threads):
        raise MemoryError('mmdcls: depthwise_fft_spectra could not allocate its work buffer')
    return spectra


def _strides(tensor: Tensor):
    """A (N, C, H, W) tensor's element strides as a C int64[4] (any layout is read as is)."""
    return (ctypes.c_int64 * 4)(*tensor.stride())


def _like_layout(input: Tensor, shape: Sequence[int]) -> Tensor:
    """An empty tensor of ``shape`` in input's memory format: channels-last for channels-last
    input (ConvNeXt's blocks pass that; the output then permutes to NHWC for free)."""
    channels_last = (input.is_contiguous(memory_format=torch.channels_last)
                     and not input.is_contiguous())
    return torch.empty(tuple(shape), dtype=input.dtype, device=input.device,
                       memory_format=torch.channels_last if channels_last
                       else torch.contiguous_format)


def depthwise_fft_filter(input: Tensor, spectra: Tensor, bias: Optional[Tensor],
                         in_offset: Sequence[int], out_offset: Sequence[int],
                         out_size: Sequence[int], lengths: Sequence[int],
                         conjugate: bool = False) -> Tensor:
    """Each map of input (N, C, H, W), placed at ``in_offset`` in a zero (L0, L1) plane,
    circularly correlated with its kernel (``conjugate``: convolved) through ``spectra`` of
    :func:`depthwise_fft_spectra`, read at ``out_offset`` (``out_size`` values), plus bias:
    (N, C, *out_size), channels-last if input is. No autograd."""
    n, c, h, w = input.shape
    lengths = _check_lengths(lengths)
    groups = -(-c // _fft_group(input.dtype))
    expected = (groups, lengths[0], lengths[1] // 2 + 1, 2, 2, 32 // input.element_size())
    if (tuple(spectra.shape) != expected or spectra.dtype != input.dtype
            or not spectra.is_contiguous()):
        raise ValueError(f'spectra must be depthwise_fft_spectra of a ({c}, 1, kh, kw) '
                         f'{input.dtype} kernel for lengths {tuple(lengths)}: contiguous '
                         f'{expected}, got {spectra.dtype} {tuple(spectra.shape)}')
    if bias is not None and (bias.shape != (c, ) or bias.dtype != input.dtype):
        raise ValueError(f'bias must be None or ({c},) {input.dtype}, got {bias.dtype} '
                         f'{tuple(bias.shape)}')
    out = _like_layout(input, (n, c, *out_size))
    if out.numel() == 0:
        return out
    lib = _checked_library('the FFT depthwise convolution')
    threads = max(1, min(torch.get_num_threads(), n * groups))
    if getattr(lib, 'depthwise_fft_filter' + _TYPES[input.dtype][0])(
            input.data_ptr(), _strides(input), _aligned(spectra, 'spectra').data_ptr(),
            None if bias is None else bias.contiguous().data_ptr(), out.data_ptr(),
            _strides(out), n, c, h, w, *in_offset, *out_size, *out_offset, *lengths,
            int(conjugate), threads):
        raise MemoryError('mmdcls: depthwise_fft_filter could not allocate its work buffer')
    return out


def depthwise_fft_grad_kernel(input: Tensor, grad: Tensor, in_offset: Sequence[int],
                              kernel_size: Sequence[int], lengths: Sequence[int]) -> Tensor:
    """(C, 1, kh, kw): sum over the batch of the circular correlation of grad (N, C, GH, GW)
    at (0, 0) with input (N, C, H, W) at ``in_offset`` in (L0, L1) planes, at shifts 0 .. k - 1:
    the kernel gradient of the correlation :func:`depthwise_fft_filter` computes."""
    n, c, h, w = input.shape
    kh, kw = kernel_size
    lengths = _check_lengths(lengths)
    grad_kernel = input.new_empty((c, 1, kh, kw))
    lib = _checked_library('the FFT depthwise convolution')
    groups = -(-c // _fft_group(input.dtype))
    threads = max(1, min(torch.get_num_threads(), groups))
    if getattr(lib, 'depthwise_fft_grad_kernel' + _TYPES[input.dtype][0])(
            input.data_ptr(), _strides(input), grad.data_ptr(), _strides(grad),
            grad_kernel.data_ptr(), n, c, h, w, *in_offset, *grad.shape[2:], kh, kw, *lengths,
            threads):
        raise MemoryError('mmdcls: depthwise_fft_grad_kernel could not allocate its work buffer')
    return grad_kernel
