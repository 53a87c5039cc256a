"""The conventions of the official ``dcls`` 0.1.1 construction that every path here follows:
version names, which kernel axis each component of ``P`` indexes, the width floors and the
normalisation epsilon; and the per-axis outer product both torch paths build kernels from."""
from typing import Sequence, Tuple

from torch import Tensor

VERSIONS = ('v0', 'v1', 'gauss', 'max')
#: versions with a learnable width ``SIG``
VERSIONS_WITH_SIGMA = ('gauss', 'max')
#: added to |SIG|: sigma of ``gauss``, half-width of ``max``
SIGMA_FLOOR = {'gauss': 0.27, 'max': 1.0}
#: added to the sum of the interpolation weights that normalises ``v1``, ``gauss``, ``max``
NORMALISATION_EPS = 1e-7
#: floor of the Gaussian's exponent -(offset / sigma)**2 / 2: exp() below about -87 gives
#: float32 denormals or zero, 15-40x slower on CPU; the tail is then 1.8e-35 instead of ~0
GAUSS_EXPONENT_FLOOR = -80.0


def check_version(version: str) -> None:
    """Raises ValueError unless ``version`` is one of :data:`VERSIONS`."""
    if version not in VERSIONS:
        raise ValueError(f'version must be one of {VERSIONS}, but got {version!r}')


def position_axes(version: str, ndim: int) -> Tuple[int, ...]:
    """Kernel axis that each component of ``P`` (and ``SIG``) indexes, as in ``dcls`` 0.1.1."""
    check_version(version)
    if version == 'v0':
        return {1: (0, ), 2: (0, 1), 3: (0, 2, 1)}[ndim]
    return tuple(reversed(range(ndim)))


def outer(profiles: Sequence[Tensor]) -> Tensor:
    """(R, K, T0, T1, ...) outer product of (R, K, Ti) profiles."""
    ndim = len(profiles)
    result = None
    for axis, profile in enumerate(profiles):
        shape = profile.shape[:2] + (1, ) * axis + profile.shape[2:] + (1, ) * (ndim - 1 - axis)
        result = profile.view(shape) if result is None else result * profile.view(shape)
    return result
