"""Mixed precision on CPU: what ``tools/train.py --amp`` uses when there is no GPU.

mmengine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device, so on CPU ``--amp`` switches
to this wrapper: the forward pass runs under ``torch.autocast('cpu', dtype=bfloat16)``.
bfloat16 has float32's exponent range, so no loss scaling is needed and ``update_params`` is
the plain ``OptimWrapper`` one. Parameters, gradients and optimizer state stay float32
(autocast casts copies), so the DCLS positions and their clamping are unaffected.
"""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmdcls.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` adds CPU autocast.

    ``optim_wrapper=dict(type='mmdcls.CPUAutocastOptimWrapper', optimizer=...)``.

    Args:
        dtype (str | torch.dtype): autocast dtype, ``'bfloat16'`` (default) or ``'float16'``
            (CPU float16 autocast needs a recent CPU and torch; without loss scaling it may
            underflow, so bfloat16 is the safe choice).
        **kwargs: passed to :class:`mmengine.optim.OptimWrapper`.
    """

    valid_dtypes = ('bfloat16', 'float16')

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype not in self.valid_dtypes:
            raise ValueError(f'CPUAutocastOptimWrapper: dtype must be one of '
                             f'{self.valid_dtypes}, got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` plus CPU autocast."""
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
