"""The constants the C library shares with its Python side, each defined here once.

:mod:`.generated_header` writes them as ``#define`` lines into the header the C sources include
(``csrc/real_vec.h`` includes it), so C and Python cannot disagree. The constants of the DCLS
construction itself (normalisation epsilon, Gaussian exponent floor, width floors) live in
:mod:`mmdcls.ops.construct.conventions` and reach the C code as arguments.
"""
import torch

#: bytes of one vector of the C code (``vec``): ``LANES = VECTOR_BYTES / sizeof(REAL)``
#: scalars; buffers the C code reads as whole vectors are aligned to it
VECTOR_BYTES = 32

#: the prime radices of the C FFT plan, in the order it factors a length (pairs of 2 as one
#: radix-4 stage): a transform length may have no other prime factor
FFT_RADICES = (2, 3, 5)

#: ``version`` argument of the construction entry points: ``dense_*`` (per-axis profiles)
PROFILE_VERSIONS = {'gauss': 0, 'max': 1}
#: ``version`` argument of the construction entry points: ``bilinear_*``
BILINEAR_VERSIONS = {'v0': 0, 'v1': 1}


def lanes(dtype: torch.dtype) -> int:
    """Scalars of ``dtype`` per vector of the C code."""
    return VECTOR_BYTES // dtype.itemsize
