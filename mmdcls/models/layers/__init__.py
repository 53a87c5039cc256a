from .dcls_conv import DCLSConv1d, DCLSConv2d, DCLSConv3d

__all__ = ['DCLSConv1d', 'DCLSConv2d', 'DCLSConv3d']
