"""Compiled and generated kernels behind the convolution algorithms and the kernel
construction: :mod:`.cpu` (a C library built on first use with the machine's C compiler).
Each subpackage is imported only by the algorithms that run it."""
