from .convnext_dcls import ConvNeXtDCLS
from .convnext_dcls_trunk import ConvNeXtDCLSBlock, ConvNeXtDCLSTrunk
from .layer_ids import convnext_layer_depth, convnext_num_layers

__all__ = [
    'ConvNeXtDCLS', 'ConvNeXtDCLSBlock', 'ConvNeXtDCLSTrunk', 'convnext_layer_depth',
    'convnext_num_layers'
]
