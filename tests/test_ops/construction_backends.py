"""The construction_backend fixture of the operator tests (imported by the test modules that
use it; a conftest.py here would shadow tests/test_tools/conftest.py, which is imported by
name)."""
import pytest

from mmdcls.ops.kernels import cpu


@pytest.fixture(params=['native', 'torch'])
def construction_backend(request, monkeypatch):
    """Runs a test once through the fused C construction (2-D CPU kernels; skipped where it
    cannot be built) and once through the pure-torch one, which other machines fall back to.
    """
    if request.param == 'torch':
        monkeypatch.setenv(cpu.ENV_VAR, '0')
    else:
        monkeypatch.setenv(cpu.ENV_VAR, 'auto')
        if cpu.library() is None:
            pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    return request.param
