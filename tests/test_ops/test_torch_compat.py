"""The torch API differences mmdcls.ops.torch_compat bridges, checked against the running torch."""
import pytest
import torch

from mmdcls.ops.torch_compat import DYNAMO_CONSTANT_MARK, DYNAMO_TRACES_OPS, constant_under_compile


def test_constant_mark_is_what_assume_constant_result_sets():
    if not hasattr(torch.compiler, 'assume_constant_result'):
        pytest.skip('no torch.compiler.assume_constant_result on this torch')

    def reference():
        return 1

    def ours():
        return 1

    marked = torch.compiler.assume_constant_result(reference)
    added = set(vars(marked)) - set(vars(lambda: 1))
    assert added == {DYNAMO_CONSTANT_MARK}
    assert getattr(constant_under_compile(ours), DYNAMO_CONSTANT_MARK) is True


def test_constant_under_compile_runs_once_while_tracing():
    if not DYNAMO_TRACES_OPS:
        pytest.skip('mmdcls compiles from torch 2.4')
    calls = []

    @constant_under_compile
    def choose(key):
        calls.append(key)
        return 'double'

    def fn(x):
        return x * 2 if choose((x.shape[0], )) == 'double' else x

    compiled = torch.compile(fn, fullgraph=True, backend='eager')
    torch.testing.assert_close(compiled(torch.ones(3)), torch.full((3, ), 2.0))
    compiled(torch.ones(3))
    assert calls == [(3, )]
