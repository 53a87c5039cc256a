"""Optimizer wrappers (registered in ``mmdcls.registry.OPTIM_WRAPPERS``)."""
from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper

__all__ = ['CPUAutocastOptimWrapper']
