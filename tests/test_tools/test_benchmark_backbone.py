"""tools/analysis/benchmark_backbone.py: runs end to end on a tiny input (the numbers are not
checked here: the test machines are loaded; the lead runs it for numbers)."""
import re

import torch
from conftest import load_tool, run_tool

MODELS = ('7x7', '7x7-cl', 'v0', 'v0-folded', 'v0-folded-lk', 'gauss', 'gauss-folded',
          'gauss-folded-lk')


def test_benchmark_backbone_reports_every_model_against_the_7x7_baseline():
    proc = run_tool([
        'tools/analysis/benchmark_backbone.py', '--shapes', '1x64', '--repeats', '1', '--threads',
        '1', '--no-memory', '--no-check'
    ],
                    timeout=600)
    out = proc.stdout
    for mode, models in (('train', ('7x7', '7x7-cl', 'v0', 'gauss')), ('infer', MODELS)):
        for model in models:
            line = re.search(
                rf'^\s*{mode}\s+1x3x64x64\s+{re.escape(model)}\s+([\d.]+)\s+'
                rf'([\d.]+)x', out, re.M)
            assert line, f'no {mode} line for {model} in:\n{out}'
            assert float(line.group(1)) > 0
            if model == '7x7':
                assert float(line.group(2)) == 1.0
    assert 'median over rounds of time / time of the 7x7 baseline' in out


def test_benchmark_backbone_fails_on_a_missed_target(monkeypatch, capsys):
    """Exit status 1 when a target is missed (here: a target no model can meet)."""
    benchmark_backbone = load_tool('tools/analysis/benchmark_backbone.py')
    monkeypatch.setattr(benchmark_backbone, 'TARGET_UNFOLDED', 0.0)
    threads = torch.get_num_threads()
    try:
        status = benchmark_backbone.main([
            '--shapes', '1x32', '--repeats', '1', '--threads', '1', '--no-memory', '--modes',
            'infer', '--variants', 'v0'
        ])
    finally:
        torch.set_num_threads(threads)  # main() sets it for the whole process
    out = capsys.readouterr().out
    assert status == 1
    assert 'Targets missed:' in out and 'infer 1x32 v0 unfolded' in out
