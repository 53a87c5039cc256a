"""The C library's entry points, each declared once: name, source file and C argument list.

Every entry point is compiled once per :data:`REAL_TYPES` variant: ``<name>_f32`` with ``REAL``
standing for ``float`` and ``<name>_f64`` with ``REAL`` standing for ``double``. Each returns an
int, 0 on success and non-zero when a work buffer (or an FFT plan) could not be allocated, and
takes ``int nthreads`` (OpenMP threads) last. From these lists :func:`c_prototype` gives the C
declarations the sources are compiled against (see :mod:`.generated_header`: a definition that
differs does not build) and :func:`declare` the ctypes argument types.
"""
import ctypes
from typing import Dict, NamedTuple, Tuple

import torch


class RealType(NamedTuple):
    """One compiled variant of every entry point."""
    suffix: str  # ending of its symbol names
    c_type: str  # what REAL stands for
    define: str  # macro defined on the compiler's command line to select it ('' for none)
    scalar: type  # ctypes type of a REAL argument


#: torch dtype -> its compiled variant; exactly one variant has no ``define``
REAL_TYPES = {
    torch.float32: RealType('_f32', 'float', '', ctypes.c_float),
    torch.float64: RealType('_f64', 'double', 'REAL_IS_DOUBLE', ctypes.c_double)
}

# C argument types: REAL is the variant's scalar type
_CONST_ARRAY = 'const REAL *'  # a tensor's data, read (ctypes: its data_ptr(), None for NULL)
_ARRAY = 'REAL *'  # a tensor's data, written (or read through a writable pointer)
_I64 = 'int64_t'
_INT = 'int'
_REAL = 'REAL'
_STRIDES = 'const int64_t *'  # int64[4]: a (N, C, H, W) tensor's element strides
_CTYPES = {
    _CONST_ARRAY: ctypes.c_void_p,
    _ARRAY: ctypes.c_void_p,
    _I64: ctypes.c_int64,
    _INT: ctypes.c_int,
    _STRIDES: ctypes.POINTER(ctypes.c_int64)
}
_NTHREADS = ('nthreads', _INT)

# Arguments shared by the four construction entry points, after their tensors: the kernel
# rows' layout (rows R, elements per row K, kernel sizes, which P component gives each kernel
# axis, and each component's offset size // 2).
_ROW_LAYOUT = (('R', _I64), ('K', _INT), ('S0', _INT), ('S1', _INT), ('comp0', _INT),
               ('comp1', _INT), ('half0', _REAL), ('half1', _REAL))
# The profiles' constants: width floor, normalisation epsilon, Gaussian exponent floor, version
_PROFILE_CONSTANTS = (('sig_floor', _REAL), ('eps', _REAL), ('exponent_floor', _REAL), ('version',
                                                                                        _INT))

#: entry point -> (source file in csrc/, ((argument name, C type), ...)), without the trailing
#: ``int nthreads`` that every entry point takes
ENTRY_POINTS: Dict[str, Tuple[str, tuple]] = {
    # fused DCLS kernel construction (2-D kernels): gauss / max profiles, v0 / v1 bilinear taps
    'dense_forward': ('construct_profiles_2d.c',
                      (('weight', _CONST_ARRAY), ('P', _CONST_ARRAY), ('SIG', _CONST_ARRAY),
                       ('kernel', _ARRAY), ('saved', _ARRAY), *_ROW_LAYOUT, *_PROFILE_CONSTANTS)),
    'dense_backward':
    ('construct_profiles_2d.c',
     (('weight', _CONST_ARRAY), ('P', _CONST_ARRAY), ('SIG', _CONST_ARRAY),
      ('grad_kernel', _CONST_ARRAY), ('saved', _ARRAY), ('grad_weight', _ARRAY), ('grad_P', _ARRAY),
      ('grad_SIG', _ARRAY), *_ROW_LAYOUT, *_PROFILE_CONSTANTS)),
    'bilinear_forward':
    ('construct_bilinear_2d.c', (('weight', _CONST_ARRAY), ('P', _CONST_ARRAY), ('kernel', _ARRAY),
                                 *_ROW_LAYOUT, ('eps', _REAL), ('version', _INT))),
    'bilinear_backward': ('construct_bilinear_2d.c',
                          (('weight', _CONST_ARRAY), ('P', _CONST_ARRAY),
                           ('grad_kernel', _CONST_ARRAY), ('grad_weight', _ARRAY),
                           ('grad_P', _ARRAY), *_ROW_LAYOUT, ('eps', _REAL), ('version', _INT))),
    # sparse direct depthwise convolution (stride 1, zero padding) over non-zero taps
    'depthwise_forward':
    ('depthwise_2d.c', (('x', _CONST_ARRAY), ('kernel', _CONST_ARRAY), ('bias', _CONST_ARRAY),
                        ('y', _ARRAY), ('N', _I64), ('C', _INT), ('H', _INT), ('W', _INT),
                        ('kh', _INT), ('kw', _INT), ('ph', _INT), ('pw', _INT))),
    'depthwise_grad_kernel':
    ('depthwise_2d.c',
     (('x', _CONST_ARRAY), ('gy', _CONST_ARRAY), ('gk', _ARRAY), ('N', _I64), ('C', _INT),
      ('H', _INT), ('W', _INT), ('kh', _INT), ('kw', _INT), ('ph', _INT), ('pw', _INT))),
    # FFT depthwise convolution, transforms vectorised across channels
    'depthwise_fft_spectra': ('depthwise_fft_2d.c',
                              (('kernel', _CONST_ARRAY), ('spectra', _ARRAY), ('C', _I64),
                               ('kh', _INT), ('kw', _INT), ('L0', _INT), ('L1', _INT))),
    'depthwise_fft_filter':
    ('depthwise_fft_2d.c',
     (('in', _CONST_ARRAY), ('in_strides', _STRIDES), ('spectra', _CONST_ARRAY),
      ('bias', _CONST_ARRAY), ('out', _ARRAY), ('out_strides', _STRIDES), ('N', _I64), ('C', _I64),
      ('ih', _INT), ('iw', _INT), ('in0', _INT), ('in1', _INT), ('oh', _INT), ('ow', _INT),
      ('out0', _INT), ('out1', _INT), ('L0', _INT), ('L1', _INT), ('conjugate', _INT))),
    'depthwise_fft_grad_kernel':
    ('depthwise_fft_2d.c',
     (('in', _CONST_ARRAY), ('in_strides', _STRIDES), ('grad', _CONST_ARRAY),
      ('grad_strides', _STRIDES), ('grad_kernel', _ARRAY), ('N', _I64), ('C', _I64), ('ih', _INT),
      ('iw', _INT), ('in0', _INT), ('in1', _INT), ('gh', _INT), ('gw', _INT), ('kh', _INT),
      ('kw', _INT), ('L0', _INT), ('L1', _INT))),
}


def c_prototype(name: str, variant: RealType) -> str:
    """The C declaration of entry point ``name`` in ``variant``."""
    arguments = ENTRY_POINTS[name][1] + (_NTHREADS, )
    listed = ', '.join(
        f'{kind.replace(_REAL, variant.c_type)}{"" if kind.endswith("*") else " "}{argument}'
        for argument, kind in arguments)
    return f'int {name}{variant.suffix}({listed});'


def declare(library: ctypes.CDLL) -> None:
    """Sets the argument and result types of every entry point of every variant; RuntimeError
    if one is missing from ``library``."""
    for variant in REAL_TYPES.values():
        for name, (_, arguments) in ENTRY_POINTS.items():
            symbol = name + variant.suffix
            if not hasattr(library, symbol):
                raise RuntimeError(f'the built C library has no entry point {symbol}')
            function = getattr(library, symbol)
            function.argtypes = [
                variant.scalar if kind == _REAL else _CTYPES[kind]
                for _, kind in arguments + (_NTHREADS, )
            ]
            function.restype = ctypes.c_int


def strides(tensor: torch.Tensor):
    """A (N, C, H, W) tensor's element strides as the ``int64[4]`` of ``*_strides`` arguments
    (the FFT entry points read any layout as is)."""
    return (ctypes.c_int64 * 4)(*tensor.stride())
