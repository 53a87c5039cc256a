"""Compiled and generated kernels behind the convolution algorithms and the kernel
construction: :mod:`.cpu` (a C library built on first use with the machine's C compiler) and
:mod:`.triton` (Triton kernels for CUDA, compiled by Triton on first use; runnable on CPU
tensors in Triton's interpreter). Each is imported only by what runs it; neither is needed
(without them the torch paths run).
"""
