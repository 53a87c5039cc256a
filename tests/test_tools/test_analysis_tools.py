"""tools/analysis: get_flops counts DCLS layers as dense conv + construction;
visualize_positions writes a PNG; benchmark_fps runs; CPU --amp wrapper."""
import pytest
import torch
from conftest import SEG_CONFIG, load_tool, run_tool, seg_data_options

import mmdcls  # noqa: F401
from mmdcls.ops import Dcls2d


@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_get_flops_counts_dcls_conv_and_construction(version):
    analyze = load_tool('tools/analysis/get_flops.py').analyze
    c, k, size, hw = 8, 5, 7, 12
    layer = Dcls2d(c, c, k, dilated_kernel_size=size, padding=size // 2, groups=c, version=version)
    result = analyze(layer, (torch.zeros(1, c, hw, hw), ))
    dense_conv = c * size * size * hw * hw  # depthwise: one MAC per tap per output pixel
    construct = c * k * (2**2 if version == 'v0' else size + size + size * size)
    assert result['dcls_construct_flops'] == construct
    assert result['flops'] == dense_conv + construct
    assert not any('Construct' in op for op in result['unsupported'])


def test_get_flops_tool_on_a_demo_config():
    proc = run_tool(['tools/analysis/get_flops.py', SEG_CONFIG, '--shape', '64', '--backbone-only'],
                    timeout=180)
    assert 'GFLOPs' in proc.stdout and 'DCLS kernel construction' in proc.stdout
    # 4 + 4 + 3 * 8 + 8 ... the demo backbone's construction is non-zero
    line = [x for x in proc.stdout.splitlines() if 'construction' in x][0]
    assert float(line.split('construction')[1].split()[0]) > 0


def _demo_backbone_checkpoint(path, shared=True):
    from mmdcls.models import ConvNeXtDCLS
    backbone = ConvNeXtDCLS(
        arch=dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64], kernel_count=4),
        dilated_kernel_size=9,
        share_positions=shared)
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, Dcls2d):
                m.P.uniform_(-4, 4)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {}}, path)


def test_visualize_positions_writes_png(tmp_path):
    tool = load_tool('tools/analysis/visualize_positions.py')
    collect_layers, load_state_dict, main = tool.collect_layers, tool.load_state_dict, tool.main
    ckpt = tmp_path / 'ckpt.pth'
    _demo_backbone_checkpoint(ckpt)
    out = tmp_path / 'positions.png'
    main([str(ckpt), '--out', str(out), '--dilated-kernel-size', '9', '--channels', '3'])
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10000
    stages = collect_layers(load_state_dict(str(ckpt))[0], 'backbone.')
    assert list(stages) == [f'backbone.stages.{i}' for i in range(4)]
    assert stages['backbone.stages.2']['shared'] and stages['backbone.stages.2']['blocks'] == 2


def test_visualize_positions_rejects_non_dcls(tmp_path):
    main = load_tool('tools/analysis/visualize_positions.py').main
    ckpt = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(1)}}, ckpt)
    with pytest.raises(ValueError, match='dwconv.P'):
        main([str(ckpt), '--out', str(tmp_path / 'x.png')])


def test_benchmark_fps_runs(tiny_data):
    proc = run_tool([
        'tools/analysis/benchmark_fps.py', SEG_CONFIG, '--max-iter', '3', '--num-warmup', '1',
        '--cfg-options', *seg_data_options(tiny_data)
    ],
                    timeout=180)
    assert 'Overall fps:' in proc.stdout


def test_cpu_autocast_optim_wrapper():
    from mmdcls.engine.optim_wrappers import CPUAutocastOptimWrapper
    layer = Dcls2d(4, 4, 3, dilated_kernel_size=5, padding=2, groups=4, version='v0')
    lin = torch.nn.Linear(4, 4)
    model = torch.nn.ModuleDict(dict(dcls=layer, lin=lin))
    wrapper = CPUAutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    before = layer.P.detach().clone()
    with wrapper.optim_context(model):
        y = lin(torch.randn(2, 4))
        assert y.dtype == torch.bfloat16  # autocast is on
        loss = y.float().sum() + layer(torch.randn(1, 4, 6, 6)).float().sum()
    wrapper.update_params(loss)
    assert layer.P.dtype == torch.float32 and lin.weight.dtype == torch.float32
    assert not torch.equal(before, layer.P)
    with pytest.raises(ValueError, match='dtype must be one of'):
        CPUAutocastOptimWrapper(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float64')


def test_train_amp_on_cpu_picks_autocast_wrapper_or_explains():
    from conftest import DET_CONFIG
    from mmengine.config import Config
    enable_amp = load_tool('tools/train.py').enable_amp
    seg = Config.fromfile(SEG_CONFIG)
    seg.launcher = 'none'
    assert enable_amp(seg) == 'mmdcls.CPUAutocastOptimWrapper'
    assert seg.optim_wrapper.dtype == 'bfloat16'
    assert 'mmdcls.engine.optim_wrappers' in seg.custom_imports['imports']
    with pytest.raises(ValueError, match='RoIAlign'):
        enable_amp(Config.fromfile(DET_CONFIG))
