"""Names and default learning rates of the DCLS parameters, and the default version, defined once.

``mmdcls.ops.Dcls2d`` (like the ``dcls`` package and the ConvNeXt-dcls release) stores the
kernel positions as the parameter ``P`` and, for the ``gauss`` / ``max`` versions, their widths
as ``SIG``. The backbone shares them per stage under these names, the optimizer constructor
gives them their own parameter groups and learning rates, and the checkpoints of the release
store them under ``stages.i.j.dwconv.P`` / ``.SIG``: all of them read the names from here.
"""

#: attribute / state-dict name of a DCLS layer's kernel positions, shape (ndim, C_out,
#: C_in / groups, kernel_count)
POSITION_PARAM = 'P'
#: attribute / state-dict name of the position widths of the ``gauss`` / ``max`` versions
#: (same shape as ``P``); absent (``None``) for ``v0`` / ``v1``
SIGMA_PARAM = 'SIG'
#: the parameters a stage may share across its blocks (``share_positions=True``)
SHARED_PARAM_NAMES = (POSITION_PARAM, SIGMA_PARAM)

#: default learning-rate multiplier of the positions, on top of any layer-wise scale: the
#: release's ImageNet training runs ``P`` at 5x the base lr
DEFAULT_POSITION_LR_MULT = 5.0
#: default learning-rate multiplier of the widths ``SIG``: the base lr (the release's)
DEFAULT_SIGMA_LR_MULT = 1.0

#: DCLS interpolation of the ConvNeXt-dcls release's checkpoints: the default ``version`` of
#: the backbone and of the conv-slot layers ``DCLS1d/2d/3d``, ``DCLS2dK1d``
DEFAULT_VERSION = 'v0'
