"""tools/analysis/benchmark_gpu.py: its --smoke run end to end on the CPU (table, JSON, exit
status; the figures themselves are not checked here), the refusal without a CUDA device, the
row selection, the compiled-row bookkeeping and the target checks."""
import json
import re

import pytest
import torch
from conftest import load_tool, run_tool
from torch import nn

TOOL = 'tools/analysis/benchmark_gpu.py'
MODELS = ('7x7', 'v0', 'gauss', 'release-v0', 'release-gauss')
SMOKE_ROWS = ('train/fp32/1x64', 'infer/bf16/1x64')


@pytest.fixture(scope='module')
def benchmark_gpu():
    return load_tool(TOOL)


def test_smoke_run_prints_one_table_and_writes_the_json(tmp_path):
    pytest.importorskip('DCLS', reason='the release op (dcls 0.1.1) is not installed')
    out = tmp_path / 'gpu.json'
    proc = run_tool([TOOL, '--smoke', '--device', 'cpu', '--rows', *SMOKE_ROWS, '--json', out],
                    timeout=600)
    text = proc.stdout
    assert re.search(r'^row\s+model\s+ms\s+img/s\s+vs 7x7\s+vs release\s+peak MiB', text, re.M)
    for row in SMOKE_ROWS:
        for model in MODELS:
            line = re.search(
                rf'^{re.escape(row)}\s+{re.escape(model)}\s+([\d.]+)\s+([\d.]+)\s+'
                rf'([\d.]+)x', text, re.M)
            assert line, f'no line for {row} {model} in:\n{text}'
            assert float(line.group(1)) > 0 and float(line.group(2)) > 0
            if model == '7x7':
                assert float(line.group(3)) == 1.0
    assert 'targets not enforced' in text

    report = json.loads(out.read_text())
    env = report['environment']
    for key in ('torch', 'cuda', 'cudnn', 'triton', 'device', 'mmdcls', 'mmdcls commit', 'dcls',
                'MMDCLS_CONV_ALGO'):
        assert key in env, key
    assert env['torch'] == torch.__version__
    assert report['settings']['smoke'] is True and report['settings']['device'] == 'cpu'
    assert report['targets'] == dict(ratio=1.10, memory=1.05, vs_release=1.0)
    assert [row['row'] for row in report['rows']] == list(SMOKE_ROWS)
    for row in report['rows']:
        assert row['input'] == [1, 3, 64, 64] and row['compiled'] is False
        assert set(row['models']) == set(MODELS)
        for name, figures in row['models'].items():
            assert figures['ms'] > 0 and len(figures['rounds_ms']) == 1
            assert (figures['vs_release'] is not None) == (name in ('v0', 'gauss'))
            assert ('peak_mib' in figures) == (row['mode'] == 'train')
        assert row['models']['7x7']['ratio'] == 1.0
    train = report['rows'][0]['models']
    assert train['7x7']['peak_ratio'] == 1.0 and train['v0']['peak_mib'] > 0
    assert isinstance(report['failures'], list)
    assert report['passed'] is (not report['failures'])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_smoke_run_on_cuda(tmp_path):
    """The CUDA side of the script (synchronised timing, peak memory from the caching
    allocator, the environment of the GPU, a compiled row) on a tiny input."""
    out = tmp_path / 'gpu.json'
    rows = ('train/bf16/1x64', 'infer/fp32/1x64/compiled')
    run_tool([TOOL, '--smoke', '--device', 'cuda', '--rows', *rows, '--json', out], timeout=600)
    report = json.loads(out.read_text())
    env = report['environment']
    assert env['device'] == torch.cuda.get_device_name() and env['cudnn']
    assert env['cuda'] == torch.version.cuda and env['cudnn.benchmark'] is True
    train, compiled = report['rows']
    assert [train['row'], compiled['row']] == list(rows)
    for figures in train['models'].values():
        assert figures['ms'] > 0 and figures['peak_mib'] > 0
    assert set(compiled['models']) == {'7x7', 'v0', 'gauss'}
    assert all(f['compile_s'] > 0 for f in compiled['models'].values())


def test_without_cuda_it_exits_2_with_one_line(benchmark_gpu, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert benchmark_gpu.main([]) == 2
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and 'needs a CUDA device' in out
    assert benchmark_gpu.main(['--device', 'cpu']) == 2  # only --smoke runs on the CPU
    assert 'needs a CUDA device' in capsys.readouterr().out


@pytest.mark.parametrize('failures,options,status', [
    ([], [], 0),
    (['infer/bf16/64x224 v0: 1.30x the 7x7 twin > 1.1x'], [], 1),
    (['infer/bf16/64x224 v0: 1.30x the 7x7 twin > 1.1x'], ['--no-check'], 0),
])
def test_exit_status_follows_the_targets(benchmark_gpu, monkeypatch, capsys, failures, options,
                                         status):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(benchmark_gpu, 'run', lambda args, device: dict(failures=failures))
    benchmark = torch.backends.cudnn.benchmark
    assert benchmark_gpu.main(options) == status
    assert torch.backends.cudnn.benchmark == benchmark  # restored
    out = capsys.readouterr().out
    assert ('Targets missed' in out) == bool(failures)


def test_rows_are_selected_by_pattern(benchmark_gpu):
    names = [row.name for row in benchmark_gpu.all_rows(smoke=False)]
    assert len(names) == len(set(names)) == 11
    for quick in benchmark_gpu.QUICK_ROWS:
        assert quick in names
    select = benchmark_gpu.select_rows
    assert [r.name for r in select(['*/64x224'], False)] == [
        'train/fp32/64x224', 'infer/fp32/64x224', 'train/bf16/64x224', 'infer/bf16/64x224'
    ]
    assert [r.name for r in select(['train/*'], False)] == [
        'train/fp32/64x224', 'train/bf16/64x224', 'train/fp32/2x800', 'train/bf16/2x800',
        'train/bf16/64x224/compiled'
    ]
    assert {r.shape for r in select(None, True)} == {benchmark_gpu.SMOKE_SHAPE}
    with pytest.raises(ValueError, match=r"--rows \['train/fp16/\*'\] match no row"):
        select(['train/fp16/*', 'train/*'], False)


class _TwoStages(nn.Module):
    """A stand-in for a backbone: a tuple of two feature maps."""

    def __init__(self, kernel_size):
        super().__init__()
        self.first = nn.Conv2d(3, 4, kernel_size, padding=kernel_size // 2)
        self.second = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.first(x)
        return y, self.second(y)


def test_measure_row_reports_ratios_memory_and_compilation(benchmark_gpu):
    torch.manual_seed(0)
    models = {name: _TwoStages(3 if name == '7x7' else 5) for name in MODELS}
    cpu = torch.device('cpu')
    train = benchmark_gpu.measure_row(
        benchmark_gpu.Row('train', 'bf16', '2x16', False), models, {}, cpu, rounds=2, warmup=1)
    assert train['input'] == [2, 3, 16, 16] and set(train['models']) == set(MODELS)
    for name, figures in train['models'].items():
        assert len(figures['rounds_ms']) == 2 and figures['peak_mib'] > 0
        assert figures['img_per_s'] == pytest.approx(2e3 / figures['ms'])
        assert (figures['vs_release'] is None) == (name not in ('v0', 'gauss'))
    assert all(p.grad is None for model in models.values() for p in model.parameters())

    compiled = {
        name: torch.compile(models[name], backend='eager')
        for name in benchmark_gpu.COMPILED_MODELS
    }
    infer = benchmark_gpu.measure_row(
        benchmark_gpu.Row('infer', 'fp32', '1x16', True), models, compiled, cpu, rounds=1, warmup=1)
    assert set(infer['models']) == set(benchmark_gpu.COMPILED_MODELS)
    for figures in infer['models'].values():
        assert figures['compile_s'] > 0 and figures['graphs'] >= 0
        assert figures['graph_breaks'] == 0 and figures['vs_release'] is None
        assert 'peak_mib' not in figures
    assert infer['models']['7x7']['graphs'] >= 1 and infer['late_graphs'] == 0
    lines = [
        benchmark_gpu.format_model_line(infer['row'], n, f) for n, f in infer['models'].items()
    ]
    assert all(
        line.startswith('infer/fp32/1x16/compiled') and 'graph breaks' in line for line in lines)


def _figures(ratio, vs_release=None, peak_ratio=None):
    figures = dict(ratio=ratio, vs_release=vs_release)
    if peak_ratio is not None:
        figures['peak_ratio'] = peak_ratio
    return figures


def test_check_row_names_every_missed_target(benchmark_gpu):
    met = dict(
        row='train/fp32/64x224',
        models={
            '7x7': _figures(1.0, peak_ratio=1.0),
            'v0': _figures(1.10, 0.5, 1.05),
            'gauss': _figures(0.9, 0.99, 1.0),
        })
    assert benchmark_gpu.check_row(met) == []
    missed = dict(
        row='train/fp32/64x224',
        models={
            '7x7': _figures(1.0, peak_ratio=1.0),
            'v0': _figures(1.11, 0.5, 1.0),
            'gauss': _figures(1.0, 1.0, 1.06),
        })
    assert benchmark_gpu.check_row(missed) == [
        'train/fp32/64x224 v0: 1.11x the 7x7 twin > 1.1x',
        "train/fp32/64x224 gauss: peak memory 1.06x the twin's > 1.05x",
        'train/fp32/64x224 gauss: 1.00x the release op (not faster)',
    ]


@pytest.mark.parametrize('time_limit,measured', [(0, 2), (1e-9, 0)])
def test_rows_past_the_time_limit_are_named_and_count_as_missed(benchmark_gpu, monkeypatch,
                                                                tmp_path, time_limit, measured):
    torch.manual_seed(0)
    models = {name: _TwoStages(3 if name == '7x7' else 5) for name in MODELS}
    monkeypatch.setattr(benchmark_gpu, 'build_models', lambda device, arch: (models, None))
    out = tmp_path / 'gpu.json'
    rows = ['train/fp32/1x64', 'infer/fp32/1x64']
    args = benchmark_gpu.parse_args([
        '--smoke', '--device', 'cpu', '--rows', *rows, '--time-limit',
        str(time_limit), '--json',
        str(out)
    ])
    report = benchmark_gpu.run(args, torch.device('cpu'))
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert [row['row'] for row in report['rows']] == rows[:measured]
    assert report['not_run'] == rows[measured:]
    assert any(f.startswith('not measured (past --time-limit') for f in report['failures']) == (
        measured < len(rows))
