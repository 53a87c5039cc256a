"""Training hooks (registered in ``mmdcls.registry.HOOKS``)."""
from .clamp_hook import DCLSClampHook

__all__ = ['DCLSClampHook']
