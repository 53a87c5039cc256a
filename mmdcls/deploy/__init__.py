"""Deployment helpers: fold DCLS layers into standard convolutions (pure torch)."""
from .fold import fold_dcls, fold_dcls_layer, is_dcls_layer

__all__ = ['fold_dcls', 'fold_dcls_layer', 'is_dcls_layer']
