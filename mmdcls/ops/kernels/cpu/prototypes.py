"""The C library's entry points, each declared once: name, source file and named argument types.

Every entry point is compiled twice (``csrc/real_vec.h``): ``<name>_f32`` with ``REAL = float``
and ``<name>_f64`` with ``REAL = double`` (``-DREAL_IS_DOUBLE``); ``REAL`` below stands for that
scalar type. Each returns an int, 0 on success and non-zero when a work buffer (or an FFT plan)
could not be allocated, and takes ``nthreads`` (OpenMP threads) last. The argument lists mirror
the C prototypes in ``csrc/*.c``: keep both in step.
"""
import ctypes
from typing import Dict, Tuple

import torch

#: stands for the scalar type of the variant (float / double) in the argument lists below
REAL = 'REAL'
_PTR = ctypes.c_void_p  # data pointer of a tensor (or None for NULL)
_I64 = ctypes.c_int64
_INT = ctypes.c_int
_STRIDES = ctypes.POINTER(ctypes.c_int64)  # int64[4]: a (N, C, H, W) tensor's element strides

#: torch dtype -> (symbol suffix, compiler defines, ctypes scalar) of each compiled variant
REAL_TYPES = {
    torch.float32: ('_f32', (), ctypes.c_float),
    torch.float64: ('_f64', ('-DREAL_IS_DOUBLE', ), ctypes.c_double)
}

# Arguments shared by the four construction entry points, after their tensors: the kernel
# rows' layout (rows R, elements per row K, kernel sizes, which P component gives each kernel
# axis, and each component's offset size // 2).
_ROW_LAYOUT = (('R', _I64), ('K', _INT), ('S0', _INT), ('S1', _INT), ('comp0', _INT),
               ('comp1', _INT), ('half0', REAL), ('half1', REAL))

#: entry point -> (source file in csrc/, ((argument name, type), ...)), without the trailing
#: ``nthreads`` (int) that every entry point takes
ENTRY_POINTS: Dict[str, Tuple[str, tuple]] = {
    # fused DCLS kernel construction (2-D kernels): gauss / max profiles, v0 / v1 bilinear taps
    'dense_forward':
    ('construct_2d.c', (('weight', _PTR), ('P', _PTR), ('SIG', _PTR), ('kernel', _PTR),
                        ('saved', _PTR), *_ROW_LAYOUT, ('sig_floor', REAL), ('version', _INT))),
    'dense_backward':
    ('construct_2d.c', (('weight', _PTR), ('P', _PTR), ('SIG', _PTR), ('grad_kernel', _PTR),
                        ('saved', _PTR), ('grad_weight', _PTR), ('grad_P', _PTR),
                        ('grad_SIG', _PTR), *_ROW_LAYOUT, ('sig_floor', REAL), ('version', _INT))),
    'bilinear_forward': ('construct_2d.c', (('weight', _PTR), ('P', _PTR), ('kernel', _PTR),
                                            *_ROW_LAYOUT, ('version', _INT))),
    'bilinear_backward':
    ('construct_2d.c', (('weight', _PTR), ('P', _PTR), ('grad_kernel', _PTR), ('grad_weight', _PTR),
                        ('grad_P', _PTR), *_ROW_LAYOUT, ('version', _INT))),
    # sparse direct depthwise convolution (stride 1, zero padding) over non-zero taps
    'depthwise_forward':
    ('depthwise_2d.c',
     (('x', _PTR), ('kernel', _PTR), ('bias', _PTR), ('y', _PTR), ('N', _I64), ('C', _INT),
      ('H', _INT), ('W', _INT), ('kh', _INT), ('kw', _INT), ('ph', _INT), ('pw', _INT))),
    'depthwise_grad_kernel':
    ('depthwise_2d.c',
     (('x', _PTR), ('gy', _PTR), ('gk', _PTR), ('N', _I64), ('C', _INT), ('H', _INT), ('W', _INT),
      ('kh', _INT), ('kw', _INT), ('ph', _INT), ('pw', _INT))),
    # FFT depthwise convolution, transforms vectorised across channels
    'depthwise_fft_spectra': ('depthwise_fft_2d.c',
                              (('kernel', _PTR), ('spectra', _PTR), ('C', _I64), ('kh', _INT),
                               ('kw', _INT), ('L0', _INT), ('L1', _INT))),
    'depthwise_fft_filter':
    ('depthwise_fft_2d.c',
     (('in', _PTR), ('in_strides', _STRIDES), ('spectra', _PTR), ('bias', _PTR), ('out', _PTR),
      ('out_strides', _STRIDES), ('N', _I64), ('C', _I64), ('ih', _INT), ('iw', _INT),
      ('in0', _INT), ('in1', _INT), ('oh', _INT), ('ow', _INT), ('out0', _INT), ('out1', _INT),
      ('L0', _INT), ('L1', _INT), ('conjugate', _INT))),
    'depthwise_fft_grad_kernel':
    ('depthwise_fft_2d.c',
     (('in', _PTR), ('in_strides', _STRIDES), ('grad', _PTR), ('grad_strides', _STRIDES),
      ('grad_kernel', _PTR), ('N', _I64), ('C', _I64), ('ih', _INT), ('iw', _INT), ('in0', _INT),
      ('in1', _INT), ('gh', _INT), ('gw', _INT), ('kh', _INT), ('kw', _INT), ('L0', _INT), ('L1',
                                                                                            _INT))),
}

#: the C sources, in build order
SOURCES = tuple(dict.fromkeys(source for source, _ in ENTRY_POINTS.values()))


def declare(library: ctypes.CDLL) -> None:
    """Sets the argument and result types of every entry point of every variant."""
    for suffix, _, real in REAL_TYPES.values():
        for name, (_, arguments) in ENTRY_POINTS.items():
            function = getattr(library, name + suffix)
            function.argtypes = [real if kind == REAL else kind for _, kind in arguments] + [_INT]
            function.restype = ctypes.c_int


def strides(tensor: torch.Tensor):
    """A (N, C, H, W) tensor's element strides as the ``int64[4]`` of ``*_strides`` arguments
    (the FFT entry points read any layout as is)."""
    return (ctypes.c_int64 * 4)(*tensor.stride())
