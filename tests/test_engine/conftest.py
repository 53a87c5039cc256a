"""Fixtures of the engine tests."""
import pytest

from .toy_models import ToyConvNeXtDCLS, has_backbone, real_backbone


@pytest.fixture(params=['toy', 'real'])
def backbone_factory(request):
    """Builds the toy backbone, and the real one when it exists."""
    if request.param == 'real':
        if not has_backbone():
            pytest.skip('mmdcls.ConvNeXtDCLS is not registered (backbone not there yet)')
        return real_backbone
    return ToyConvNeXtDCLS
