from .convnext_dcls_classifier import ConvNeXtDCLSClassifier

__all__ = ['ConvNeXtDCLSClassifier']
