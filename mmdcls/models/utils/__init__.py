"""Model utilities: channels-first LayerNorm (``LN2d``) and checkpoint loading."""
from .checkpoint import (RELEASE_SAFE_GLOBALS, check_shared_positions, extract_state_dict,
                         load_checkpoint_file, load_state_dict_checked)
from .norm import LayerNorm2d, build_norm

__all__ = [
    'LayerNorm2d', 'build_norm', 'RELEASE_SAFE_GLOBALS', 'load_checkpoint_file',
    'extract_state_dict', 'check_shared_positions', 'load_state_dict_checked'
]
