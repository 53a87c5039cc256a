"""Fixtures shared by the whole suite.

The test machines have 2 cores shared by several jobs: torch never uses more than 2 threads
here, and every test starts from the same seeds so that failures reproduce.

The suite runs in two lanes (see the Makefile). The compat lane (torch 2.1, mmcv 2.1.0 without
compiled ops) has no mmdet / mmseg, whose models need mmcv's ops: a test that fails only because
one of those is not installed is reported as skipped, naming what is missing, like
``pytest.importorskip`` would (see :func:`pytest_runtest_makereport`). Anywhere they are
installed, nothing changes.
"""
import importlib.util
import os
import random
import re

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
# no GPU: triton's interpreter runs the Triton kernels on CPU (set before anything imports triton)
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed python, numpy and torch before each test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# Modules a lane may lack by design -> why a test needing them cannot run there.
_OPTIONAL_STACK = {
    'mmdet':
    'mmdet is not installed (the compat lane has none: its models need mmcv\'s '
    'compiled ops)',
    'mmseg':
    'mmsegmentation is not installed (the compat lane has none: its models need '
    'mmcv\'s compiled ops)',
    'mmcv._ext':
    "mmcv's compiled ops (mmcv._ext) are not installed (the compat lane has "
    'mmcv-lite 2.1.0, mmcv without ops)',
}
# mmengine's Config reports a missing toolkit of a 'mmdet::' / 'mmseg::' base file this way
_MMENGINE_MISSING = re.compile(r'^(\S+) is not installed, please install')
_PACKAGE_MODULES = {'mmsegmentation': 'mmseg', 'mmdet': 'mmdet'}


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def missing_by_design(error: BaseException):
    """The skip reason if ``error`` says a module of ``_OPTIONAL_STACK`` is missing and it is
    indeed not installed; else None (a real failure)."""
    if not isinstance(error, ModuleNotFoundError):
        return None
    name = error.name
    if name is None:
        match = _MMENGINE_MISSING.match(str(error))
        name = match and _PACKAGE_MODULES.get(match.group(1))
    for module, reason in _OPTIONAL_STACK.items():
        if name and (name == module or name.startswith(module + '.')) and _absent(module):
            return reason
    return None


requires_mmcv_ops = pytest.mark.skipif(_absent('mmcv._ext'), reason=_OPTIONAL_STACK['mmcv._ext'])


@pytest.fixture(params=['c', 'torch'])
def construction_backend(request, monkeypatch):
    """Runs a test once through the fused C construction (2-D CPU kernels; skipped where it
    cannot be built) and once through the pure-torch one, which other machines fall back to.
    """
    from mmdcls.ops.kernels import cpu
    if request.param == 'torch':
        monkeypatch.setenv(cpu.ENV_VAR, '0')
    else:
        monkeypatch.setenv(cpu.ENV_VAR, 'auto')
        if cpu.library() is None:
            pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    return request.param


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'benchmark: wall-clock measurements; deselected by default (setup.cfg), run '
        'by `make bench`')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure caused only by a module this lane lacks by design becomes a skip."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or report.outcome != 'failed':
        return
    reason = missing_by_design(call.excinfo.value)
    if reason is not None:
        report.outcome = 'skipped'
        path, lineno, _ = item.location
        report.longrepr = (path, (lineno or 0) + 1, f'Skipped: {reason}')
