"""The C library of mmdcls.ops.kernels.cpu: built here, selected by MMDCLS_NATIVE, compiled
against the declarations and constants of its Python side (a mismatch does not build), its
construction identical to the pure-torch one and its FFT depthwise conv to F.conv2d, and a clear
fallback / error when unbuildable."""
import os.path as osp
import shutil

import pytest
import torch

from mmdcls.ops import construct_kernel
from mmdcls.ops.construct.conventions import GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS
from mmdcls.ops.kernels import cpu
from mmdcls.ops.kernels.cpu import constants, generated_header, prototypes

# gauss (5, 7) / 30: more profile memory than the kernel, so the backward recomputes all
# profiles; the other gauss settings reuse the forward's axis-1 profiles
SETTINGS = [('v0', (17, 17), 34), ('v1', (7, 11), 9), ('gauss', (23, 23), 26),
            ('max', (17, 11), 34), ('gauss', (9, 15), 5), ('gauss', (5, 7), 30)]


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """An unbuilt library state with its own cache directory (restored afterwards)."""
    monkeypatch.setattr(cpu.loader, '_library', None)
    monkeypatch.setattr(cpu.loader, '_failure', None)
    monkeypatch.setenv(cpu.CACHE_ENV_VAR, str(tmp_path))
    return tmp_path


def parameters(version, sizes, count, dtype, rows=50, spread=1.2):
    """Parameters with positions up to ``spread`` x the clamp limit (some outside the kernel),
    some exactly on grid points, and signed widths."""
    weight = torch.randn(rows, 1, count, dtype=dtype, requires_grad=True)
    limits = torch.tensor([s // 2 for s in sizes], dtype=dtype).view(2, 1, 1, 1)
    P = (torch.rand(2, rows, 1, count, dtype=dtype) * 2 - 1) * limits * spread
    P[:, :3, 0, :4] = P[:, :3, 0, :4].round()
    P.requires_grad_()
    SIG = None
    if version in ('gauss', 'max'):
        SIG = torch.randn(2, rows, 1, count, dtype=dtype, requires_grad=True)
    return weight, P, SIG


def construction(kernel):
    """Name of the autograd node that built ``kernel`` (the torch paths end in a view)."""
    node = kernel.grad_fn
    return node.next_functions[0][0].name() if node.name() == 'ViewBackward0' else node.name()


def kernel_and_grads(monkeypatch, mode, weight, P, SIG, sizes, version, grad):
    monkeypatch.setenv(cpu.ENV_VAR, mode)
    kernel = construct_kernel(weight, P, SIG, sizes, version)
    inputs = [t for t in (weight, P, SIG) if t is not None]
    return kernel, torch.autograd.grad(kernel, inputs, grad)


def test_library_builds_where_a_compiler_exists():
    if shutil.which('cc') is None:
        pytest.skip('no C compiler on this machine')
    assert cpu.library() is not None, cpu.failure_reason()


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('version,sizes,count', SETTINGS)
def test_native_matches_torch_construction(monkeypatch, version, sizes, count, dtype):
    if cpu.library() is None:
        pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    weight, P, SIG = parameters(version, sizes, count, dtype)
    grad = torch.randn(weight.shape[0], 1, *sizes, dtype=dtype)
    kernel, grads = kernel_and_grads(monkeypatch, 'auto', weight, P, SIG, sizes, version, grad)
    assert construction(kernel) == '_ConstructNative2dBackward'
    kernel_ref, grads_ref = kernel_and_grads(monkeypatch, '0', weight, P, SIG, sizes, version, grad)
    assert construction(kernel_ref) == '_ConstructKernelBackward' or construction(
        kernel_ref) == '_ConstructBilinearBackward'
    tol = 1e-5 if dtype == torch.float32 else 1e-13  # the dcls parity tolerance
    for name, a, b in zip(('kernel', 'weight', 'P', 'SIG'), (kernel, *grads),
                          (kernel_ref, *grads_ref)):
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= tol, f'{version} {name}: {err:.2e}'


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_triangle_narrow_and_wide_rows_match_torch(monkeypatch, dtype):
    """``max`` rows whose triangles span at most 8 taps per axis are scattered from their
    non-zero taps, wider rows contracted densely: both agree with the torch path, including
    widths at the initial value (one tap on grid points, two elsewhere) and rows mixing both."""
    if cpu.library() is None:
        pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    sizes, count = (17, 13), 12
    weight, P, SIG = parameters('max', sizes, count, dtype, rows=40)
    with torch.no_grad():
        SIG[:, :10] = 0  # as initialised: width 1 (the bilinear support)
        SIG[:, 10:20] *= 0.3  # narrow: a few taps
        SIG[:, 20:30] = SIG[:, 20:30].sign() * 6  # 13 taps: dense rows
        SIG[:, 30:, :, ::3] = -6.5  # one wide element per three: dense rows
    grad = torch.randn(weight.shape[0], 1, *sizes, dtype=dtype)
    kernel, grads = kernel_and_grads(monkeypatch, 'auto', weight, P, SIG, sizes, 'max', grad)
    assert construction(kernel) == '_ConstructNative2dBackward'
    kernel_ref, grads_ref = kernel_and_grads(monkeypatch, '0', weight, P, SIG, sizes, 'max', grad)
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    for name, a, b in zip(('kernel', 'weight', 'P', 'SIG'), (kernel, *grads),
                          (kernel_ref, *grads_ref)):
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= tol, f'{name}: {err:.2e}'


@pytest.mark.parametrize('version', ['v1', 'gauss'])
def test_thread_split_does_not_change_results(monkeypatch, version):
    if cpu.library() is None:
        pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    weight, P, SIG = parameters(version, (9, 7), 6, torch.float32, rows=200)
    grad = torch.randn(200, 1, 9, 7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernel_and_grads(monkeypatch, 'auto', weight, P, SIG, (9, 7), version, grad)
        torch.set_num_threads(2)
        two = kernel_and_grads(monkeypatch, 'auto', weight, P, SIG, (9, 7), version, grad)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip((one[0], *one[1]), (two[0], *two[1])):
        assert torch.equal(a, b)


def test_other_cases_use_the_torch_path(monkeypatch):
    weight = torch.randn(4, 1, 3)
    assert not cpu.usable(weight, (5, ))  # 1-D
    assert not cpu.usable(weight, (3, 5, 3))  # 3-D
    assert not cpu.usable(weight.half(), (5, 5))
    monkeypatch.setenv(cpu.ENV_VAR, '0')
    assert not cpu.usable(weight, (5, 5))


def test_each_entry_point_is_defined_in_its_source():
    for name, (source, _) in prototypes.ENTRY_POINTS.items():
        with open(osp.join(osp.dirname(cpu.loader.SOURCE_PATHS[0]), source)) as f:
            assert f'int FN({name})(' in f.read(), f'{name} is not defined in {source}'


def test_generated_header_defines_the_python_constants():
    text = generated_header.header_text()
    radices = ', '.join(map(str, constants.FFT_RADICES))
    assert f'#define VECTOR_BYTES {constants.VECTOR_BYTES}\n' in text
    assert f'#define FFT_RADICES {radices}\n' in text
    for name, code in {**constants.PROFILE_VERSIONS, **constants.BILINEAR_VERSIONS}.items():
        assert f'#define VERSION_{name.upper()} {code}\n' in text
    for variant in prototypes.REAL_TYPES.values():
        assert f'#define REAL {variant.c_type}\n' in text
        for name in prototypes.ENTRY_POINTS:
            assert f'int {name}{variant.suffix}(' in text


def _differ_in_argument_type(monkeypatch):
    source, arguments = prototypes.ENTRY_POINTS['bilinear_forward']
    changed = tuple((name, 'int64_t' if name == 'K' else kind) for name, kind in arguments)
    monkeypatch.setitem(prototypes.ENTRY_POINTS, 'bilinear_forward', (source, changed))


@pytest.mark.parametrize(
    'change,error',
    [(_differ_in_argument_type, 'conflicting types'),
     (lambda m: m.delitem(prototypes.ENTRY_POINTS, 'bilinear_forward'), 'no previous prototype'),
     (lambda m: m.setattr(constants, 'FFT_RADICES', (2, 3, 7)), 'FFT_RADICES')])
def test_c_code_differing_from_its_python_declaration_does_not_build(monkeypatch, fresh_library,
                                                                     change, error):
    """A ctypes argument list that differs from the C definition, a C entry point Python does
    not declare, an FFT radix without a C butterfly: each fails the build, naming why."""
    if shutil.which('cc') is None:
        pytest.skip('no C compiler on this machine')
    monkeypatch.setattr(cpu.loader, '_CONFIGS', ((('-O0', ), ('-lm', )), ))  # quick to fail
    change(monkeypatch)
    monkeypatch.setenv(cpu.ENV_VAR, '1')
    with pytest.raises(RuntimeError, match=error):
        cpu.library()
    assert not list(fresh_library.iterdir())


def test_c_fft_accepts_exactly_the_lengths_python_allows():
    """The C FFT plan and the Python length rule (``_check_lengths``, behind ``fft_lengths``)
    take their radices from one place: both accept the 5-smooth lengths, and only those."""
    if cpu.library() is None:
        pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    from mmdcls.ops.kernels.cpu.depthwise_fft import _check_lengths
    smooth = {1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, 18, 20, 24, 25, 27, 30, 32, 36, 40}
    kernel = torch.ones(1, 1, 1, 1)
    for length in range(1, 41):
        spectra = torch.empty(1, length, 1, 2, 2, constants.lanes(torch.float32))
        try:
            cpu.loader.call(
                'depthwise_fft_spectra',
                torch.float32,
                kernel.data_ptr(),
                spectra.data_ptr(),
                1,
                1,
                1,
                length,
                1,
                threads=1,
                needed_by='test')
            c_accepts = True
        except MemoryError:  # the plan's non-zero return
            c_accepts = False
        try:
            python_accepts = _check_lengths((length, 1)) is not None
        except ValueError:
            python_accepts = False
        assert c_accepts == python_accepts == (length in smooth), length


def test_construction_bindings_reject_bad_constants_and_versions():
    if cpu.library() is None:
        pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    weight, P, SIG = parameters('gauss', (5, 5), 3, torch.float32, rows=4)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r'exponent_floor must be in \[-87.0, 0.0\]'):
            cpu.dense_forward(
                weight, P, SIG, (5, 5), [1, 0], 0.27, 'gauss', eps=1e-7, exponent_floor=-100.0)
        with pytest.raises(ValueError, match='eps must be a positive finite float'):
            cpu.bilinear_forward(weight, P, (5, 5), [0, 1], 'v1', eps=0.0)
        with pytest.raises(ValueError, match=r"version must be one of \('gauss', 'max'\)"):
            cpu.dense_forward(
                weight,
                P,
                SIG, (5, 5), [1, 0],
                0.27,
                'v0',
                eps=NORMALISATION_EPS,
                exponent_floor=GAUSS_EXPONENT_FLOOR)
        with pytest.raises(ValueError, match=r"version must be one of \('v0', 'v1'\)"):
            cpu.bilinear_forward(weight, P, (5, 5), [0, 1], 'max', eps=NORMALISATION_EPS)


def test_bad_mode_names_the_variable(monkeypatch):
    monkeypatch.setenv(cpu.ENV_VAR, 'yes')
    with pytest.raises(ValueError, match='MMDCLS_NATIVE must be one of'):
        cpu.library()


def test_unbuildable_library_falls_back_with_a_warning(monkeypatch, fresh_library):
    monkeypatch.setenv('CC', 'no-such-compiler-mmdcls')
    monkeypatch.setenv(cpu.ENV_VAR, 'auto')
    weight, P, SIG = parameters('gauss', (5, 5), 3, torch.float32, rows=4)
    with pytest.warns(UserWarning, match='C library unavailable'):
        kernel = construct_kernel(weight, P, SIG, (5, 5), 'gauss')
    assert construction(kernel) == '_ConstructKernelBackward'
    monkeypatch.setenv(cpu.ENV_VAR, '1')
    with pytest.raises(RuntimeError, match='no-such-compiler-mmdcls'):
        construct_kernel(weight, P, SIG, (5, 5), 'gauss')


def test_build_is_cached_by_content(fresh_library):
    if shutil.which('cc') is None:
        pytest.skip('no C compiler on this machine')
    assert cpu.library() is not None
    built = sorted(p.name for p in fresh_library.iterdir())
    assert len(built) == 1 and built[0].startswith('mmdcls_native-') and built[0].endswith('.so')


def test_gaussian_profiles_kept_for_backward_only_when_training():
    """The Gaussian forward keeps its axis-1 profiles (1.23x the kernel for 23x23 / 26) only
    when a backward can follow."""
    if cpu.library() is None:
        pytest.skip(f'fused construction unavailable: {cpu.failure_reason()}')
    from mmdcls.utils.profiling import peak_cpu_bytes
    weight, P, SIG = parameters('gauss', (23, 23), 26, torch.float32, rows=64)
    kernel_bytes = 64 * 23 * 23 * 4

    def extra():
        return peak_cpu_bytes(lambda: construct_kernel(weight, P, SIG,
                                                       (23, 23), 'gauss')) / kernel_bytes - 1

    assert 1.0 < extra() < 1.5
    with torch.no_grad():
        assert extra() < 0.1


# (N, C, H, W, kernel, padding, lengths or None for conv.fft_lengths): channels not a
# multiple of the group (16 float32 / 8 float64 channels per transform), rectangular maps and
# kernels, kernel larger than the map, no padding, padding beyond k // 2, odd lengths
FFT_CASES = [(2, 19, 12, 9, (5, 7), (2, 3), None), (1, 1, 7, 8, (3, 3), (1, 1), None),
             (2, 40, 16, 16, (23, 23), (11, 11), None), (1, 17, 30, 20, (7, 5), (0, 0), None),
             (1, 5, 6, 10, (9, 3), (6, 2), None), (2, 9, 11, 13, (5, 5), (2, 2), (27, 25))]


def in_layout(t, layout):
    """t's values in NCHW-contiguous, channels-last or a strided (every other column) view."""
    if layout == 'channels_last':
        return t.contiguous(memory_format=torch.channels_last)
    if layout == 'strided':
        wide = t.new_zeros((*t.shape[:3], 2 * t.shape[3]))
        wide[..., ::2] = t
        return wide[..., ::2]
    return t.contiguous()


@pytest.mark.parametrize('layout', ['nchw', 'channels_last', 'strided'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', FFT_CASES)
def test_fft_depthwise_matches_conv(case, dtype, layout):
    """The FFT depthwise convolution (forward, input gradient through the same spectra,
    kernel gradient) against F.conv2d and its autograd, for inputs and output gradients in
    any layout; channels-last in, channels-last out."""
    if cpu.library() is None:
        pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    from mmdcls.ops.conv import fft_lengths
    n, c, h, w, (kh, kw), (ph, pw), lengths = case
    torch.manual_seed(3)
    x = torch.randn(n, c, h, w, dtype=dtype, requires_grad=True)
    k = torch.randn(c, 1, kh, kw, dtype=dtype, requires_grad=True)
    b = torch.randn(c, dtype=dtype)
    ref = torch.nn.functional.conv2d(x, k, b, 1, (ph, pw), 1, c)
    grad = torch.randn_like(ref)
    ref_gx, ref_gk = torch.autograd.grad(ref, (x, k), grad)
    lengths = lengths or fft_lengths((h, w), (kh, kw), (ph, pw))
    x, k = in_layout(x.detach(), layout), k.detach()
    grad = in_layout(grad, layout)
    spectra = cpu.depthwise_fft_spectra(k, lengths)
    y = cpu.depthwise_fft_filter(x, spectra, b, (ph, pw), (0, 0), ref.shape[2:], lengths)
    gx = cpu.depthwise_fft_filter(
        grad, spectra, None, (0, 0), (ph, pw), (h, w), lengths, conjugate=True)
    gk = cpu.depthwise_fft_grad_kernel(x, grad, (ph, pw), (kh, kw), lengths)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for ours, theirs in ((y, ref), (gx, ref_gx), (gk, ref_gk)):
        assert ours.shape == theirs.shape and ours.dtype == dtype
        assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < tol
    if layout == 'channels_last' and c > 1:
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    elif layout == 'nchw':
        assert y.is_contiguous()


def test_fft_depthwise_rejects_bad_lengths_and_spectra():
    if cpu.library() is None:
        pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    k = torch.randn(3, 1, 3, 3)
    with pytest.raises(ValueError, match='lengths must be two positive ints'):
        cpu.depthwise_fft_spectra(k, (14, 16))  # 7
    with pytest.raises(ValueError, match='lengths'):
        cpu.depthwise_fft_spectra(k, (16, ))
    spectra = cpu.depthwise_fft_spectra(k, (16, 16))
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match='spectra must be depthwise_fft_spectra'):
        cpu.depthwise_fft_filter(x, spectra, None, (1, 1), (0, 0), (8, 8), (16, 18))
    with pytest.raises(ValueError, match='spectra must be depthwise_fft_spectra'):
        cpu.depthwise_fft_filter(x.double(), spectra, None, (1, 1), (0, 0), (8, 8), (16, 16))
    with pytest.raises(ValueError, match='bias must be None or'):
        cpu.depthwise_fft_filter(x, spectra, torch.zeros(4), (1, 1), (0, 0), (8, 8), (16, 16))
