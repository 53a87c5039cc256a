"""The built wheel works when installed, not only the editable checkout.

Builds the wheel from the package's sources (``pip wheel --no-deps --no-build-isolation``, the
way a release is built), installs it without dependencies into an empty target directory that
shadows any other mmdcls on ``sys.path``, and, in a fresh interpreter started outside the
repository: imports mmdcls from there, compiles the C library from the *installed* sources
into an empty ``MMDCLS_CACHE_DIR`` (so a source missing from the wheel fails here), checks a
``Dcls2d`` layer against the official ``dcls`` 0.1.1 package and trains a small ConvNeXtDCLS
for one step. Runs in both lanes; ``make test-compat`` runs it on torch 2.1.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# what setup.py needs to build the wheel; everything else in the checkout stays behind
SOURCES = ('setup.py', 'README.md', 'requirements', 'mmdcls')

pytest.importorskip('DCLS', reason='the dcls 0.1.1 reference (requirements/tests.txt)')


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, (f'{" ".join(map(str, cmd))} failed ({result.returncode})\n'
                                    f'{result.stdout[-4000:]}\n{result.stderr[-4000:]}')
    return result.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel built from a clean copy of the sources (no build/ or egg-info leftovers of
    the checkout can leak into it)."""
    src = tmp_path_factory.mktemp('src')
    for name in SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(
                path,
                src / name,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.so', '*.egg-info'))
        elif osp.exists(path):
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp('dist')
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
        '--disable-pip-version-check', '-q', '-w',
        str(dist),
        str(src)
    ])
    wheels = sorted(dist.glob('mmdcls-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_every_c_source_and_no_exact_pins(wheel):
    from packaging.requirements import Requirement
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith('.dist-info/METADATA')))
    for dirpath, _, filenames in os.walk(osp.join(REPO, 'mmdcls')):
        for filename in filenames:
            if filename.endswith(('.c', '.h')):
                rel = osp.relpath(osp.join(dirpath, filename), REPO).replace(os.sep, '/')
                assert rel in names, f'{rel} is missing from the wheel'
    requires = [
        Requirement(line.split(':', 1)[1]) for line in metadata.decode().splitlines()
        if line.startswith('Requires-Dist:')
    ]
    runtime = {req.name: req for req in requires if req.marker is None}
    assert str(runtime['torch'].specifier) == '>=2.1', runtime['torch']
    for req in requires:
        if req.name in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation', 'mmpretrain'):
            exact = [s for s in req.specifier if s.operator in ('==', '===')]
            assert not exact, f'exact pin in {req}'
    # mmdet / mmseg / mmpretrain only as extras: a segmentation user does not need mmdet
    assert not set(runtime) & {'mmdet', 'mmsegmentation', 'mmpretrain'}, sorted(runtime)


def test_installed_wheel_builds_the_c_library_matches_dcls_and_trains(wheel, tmp_path):
    from packaging.requirements import Requirement
    from packaging.version import Version
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(
            next(n for n in archive.namelist() if n.endswith('.dist-info/METADATA'))).decode()
    requirements = {
        req.name: req
        for req in (Requirement(line.split(':', 1)[1]) for line in metadata.splitlines()
                    if line.startswith('Requires-Dist:') and 'extra ==' not in line)
    }
    # the versions of the compat lane (the users' stack) are admitted
    assert requirements['torch'].specifier.contains(Version('2.1.2'))
    assert requirements['mmcv'].specifier.contains(Version('2.1.0'))
    assert requirements['mmengine'].specifier.contains(Version('0.10.7'))

    target = tmp_path / 'site'
    _run([
        sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index',
        '--disable-pip-version-check', '-q', '--target',
        str(target),
        str(wheel)
    ])
    cache = tmp_path / 'cache'
    cache.mkdir()
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(target),
        MMDCLS_CACHE_DIR=str(cache),
        MMDCLS_NATIVE='1',
        PYTHONNOUSERSITE='1')
    code = textwrap.dedent(f"""
        import os, sys
        import torch
        torch.set_num_threads(min(2, torch.get_num_threads()))
        import mmdcls
        assert mmdcls.__file__.startswith({str(target)!r}), mmdcls.__file__
        assert not os.listdir({str(cache)!r}), 'the cache must start empty'
        from mmdcls.ops import Dcls2d
        from mmdcls.ops.kernels import cpu
        lib = cpu.library()
        assert lib is not None, cpu.failure_reason()
        built = [os.path.join(d, f) for d, _, fs in os.walk({str(cache)!r}) for f in fs]
        assert any(f.endswith('.so') for f in built), built

        # one layer against the official package, forward and backward
        from DCLS.construct.modules import Dcls2d as Reference
        kwargs = dict(in_channels=8, out_channels=8, kernel_count=5, dilated_kernel_size=(7, 7),
                      padding=(3, 3), groups=8, version='gauss')
        torch.manual_seed(0)
        ours = Dcls2d(**kwargs)
        torch.manual_seed(0)
        reference = Reference(**kwargs, use_implicit_gemm=False)
        reference.load_state_dict(ours.state_dict())
        x = torch.randn(2, 8, 12, 12)
        y, y_ref = ours(x), reference(x)
        scale = y_ref.abs().max()
        assert ((y - y_ref).abs().max() / scale) < 1e-5, 'output differs from dcls'
        y.square().sum().backward()
        y_ref.square().sum().backward()
        for (name, p), (_, q) in zip(ours.named_parameters(), reference.named_parameters()):
            err = ((p.grad - q.grad).abs().max() / q.grad.abs().max()).item()
            assert err < 1e-5, f'grad {{name}} differs from dcls: {{err:.1e}}'

        # one training step of a small ConvNeXt-DCLS backbone
        from mmdcls.models import ConvNeXtDCLS
        model = ConvNeXtDCLS(dict(depths=[1, 1, 2, 1], channels=[8, 16, 16, 24]),
                             dilated_kernel_size=7, kernel_count=5, layer_scale_init_value=1.0)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        before = {{n: p.detach().clone() for n, p in model.named_parameters()}}
        outs = model(torch.randn(2, 3, 64, 64))
        loss = sum(o.square().mean() for o in outs)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        assert any(n.endswith('dwconv.P') for n in moved), moved
        assert len(moved) == len(before), sorted(set(before) - set(moved))
        print('OK', torch.__version__, mmdcls.__file__)
        """)
    out = _run([sys.executable, '-c', code], cwd=str(outside), env=env)
    assert out.strip().splitlines()[-1].startswith('OK'), out
