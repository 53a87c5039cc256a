from .dcls_conv import DCLSConv1d, DCLSConv2d, DCLSConv2dK1d, DCLSConv3_1d, DCLSConv3d

__all__ = ['DCLSConv1d', 'DCLSConv2d', 'DCLSConv3d', 'DCLSConv2dK1d', 'DCLSConv3_1d']
