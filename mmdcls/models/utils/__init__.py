"""Model utilities: channels-first LayerNorm (``LN2d``), the scope layers are built in, the DCLS
parameter names, checkpoint loading and the checkpoint layouts."""
from .checkpoint import (RELEASE_SAFE_GLOBALS, UnreadableCheckpointError, check_checkpoint_file,
                         check_shared_positions, extract_state_dict, load_checkpoint_file,
                         load_state_dict_checked, unreadable_reason)
from .checkpoint_filter import FilteredCheckpoint, checkpoint_filter_fn, detect_layout
from .dcls_params import (DEFAULT_POSITION_LR_MULT, DEFAULT_SIGMA_LR_MULT, DEFAULT_VERSION,
                          POSITION_PARAM, SHARED_PARAM_NAMES, SIGMA_PARAM)
from .layer_scope import layer_class, mmdcls_scope
from .norm import LN_EPS, LayerNorm2d

__all__ = [
    'LayerNorm2d', 'LN_EPS', 'mmdcls_scope', 'layer_class', 'RELEASE_SAFE_GLOBALS',
    'load_checkpoint_file', 'check_checkpoint_file', 'UnreadableCheckpointError',
    'unreadable_reason', 'extract_state_dict', 'check_shared_positions', 'load_state_dict_checked',
    'FilteredCheckpoint', 'checkpoint_filter_fn', 'detect_layout', 'POSITION_PARAM', 'SIGMA_PARAM',
    'SHARED_PARAM_NAMES', 'DEFAULT_POSITION_LR_MULT', 'DEFAULT_SIGMA_LR_MULT', 'DEFAULT_VERSION'
]
