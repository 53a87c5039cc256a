from .convnext_dcls import ConvNeXtDCLS, ConvNeXtDCLSBlock

__all__ = ['ConvNeXtDCLS', 'ConvNeXtDCLSBlock']
