"""What the current call runs inside, asked the same way everywhere: whether autograd will want
gradients of some tensors, and whether a graph is being recorded (``torch.jit.trace`` /
``script`` or ``torch.compile``), where values cannot be read back to the host and C calls
cannot be followed."""
from typing import Optional

import torch
from torch import Tensor

from .torch_compat import is_compiling


def needs_grad(*tensors: Optional[Tensor]) -> bool:
    """Whether autograd will want a gradient of any of ``tensors`` (None entries ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def records_graph() -> bool:
    """Whether a JIT trace / script or ``torch.compile`` is recording the caller."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or is_compiling()
