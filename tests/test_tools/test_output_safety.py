"""The tools that write files never write onto their inputs and never leave a half-written
output (mmdcls.utils.safe_output), and name a checkpoint they cannot read
(mmdcls.models.utils.UnreadableCheckpointError): one line, exit status 2.

Called in-process (``main(argv)`` returns the exit status) except where the process's own exit
status and output are the point."""
import os
import sys

import pytest
import torch
from conftest import SEG_CONFIG, load_tool, run_tool

needs_links = pytest.mark.skipif(sys.platform == 'win32', reason='symbolic / hard links')
SPELLINGS = ['same path', 'relative path', 'symlink', 'hard link']
#: a DCLS backbone small enough to build and fold in a moment (tools/deploy/fold.py)
TINY_BACKBONE_CONFIG = ("default_scope = 'mmdcls'\n"
                        "model = dict(type='mmdcls.ConvNeXtDCLS', arch=dict(depths=[1, 1, 1, 1], "
                        'channels=[8, 8, 8, 8], kernel_count=3), dilated_kernel_size=5)\n')


def spelling(path, kind, monkeypatch):
    """Another name of the existing file ``path``: itself, a relative path (from a folder
    beside it), a symbolic link or a hard link to it."""
    folder = path.parent
    if kind == 'same path':
        return str(path)
    if kind == 'relative path':
        (folder / 'cwd').mkdir(exist_ok=True)
        monkeypatch.chdir(folder / 'cwd')
        return os.path.join('..', 'cwd', '..', path.name)
    link = folder / f'{kind.replace(" ", "_")}_to_{path.name}'
    (os.symlink if kind == 'symlink' else os.link)(path, link)
    return str(link)


def one_line_error(capsys, tool, *needles):
    """The one error line the tool printed on stderr, checked for ``needles``."""
    err = capsys.readouterr().err
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1 and lines[0].startswith(f'{tool}: error: '), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def release_checkpoint(path):
    """A tiny ConvNeXt-DCLS classifier in the release's layout (``{'model': ...}``)."""
    from mmdcls.models import ConvNeXtDCLSClassifier
    model = ConvNeXtDCLSClassifier(
        dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]),
        num_classes=4,
        dilated_kernel_size=5,
        kernel_count=3)
    torch.save({'model': model.state_dict()}, path)
    return path


def mmdet2_checkpoint(path):
    """An mmcv 1.x runner checkpoint of the release's detector (the keys the converter needs)."""
    state = {
        'backbone.downsample_layers.0.0.weight': torch.ones(8, 3, 4, 4),
        'rpn_head.rpn_conv.weight': torch.ones(4, 4, 3, 3)
    }
    torch.save({'meta': {'mmdet_version': '2.25.3'}, 'state_dict': state, 'optimizer': {}}, path)
    return path


def fold_inputs(tmp_path):
    config = tmp_path / 'tiny_backbone.py'
    config.write_text(TINY_BACKBONE_CONFIG)
    from mmdcls.models import ConvNeXtDCLS
    model = ConvNeXtDCLS(
        dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8], kernel_count=3), dilated_kernel_size=5)
    ckpt = tmp_path / 'dcls.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return config, ckpt


#: tool -> (its script, how to make its input file, argv from (input, output))
WRITERS = {
    'mmpretrain_to_release': ('tools/model_converters/mmpretrain_to_release.py', release_checkpoint,
                              lambda src, dst: [src, dst]),
    'convnext_dcls_to_mmdcls': ('tools/model_converters/convnext_dcls_to_mmdcls.py',
                                mmdet2_checkpoint, lambda src, dst: [src, dst]),
    'visualize_positions': ('tools/analysis/visualize_positions.py', release_checkpoint,
                            lambda src, dst: [src, '--out', dst, '--dilated-kernel-size', '5']),
}


@needs_links
@pytest.mark.parametrize('kind', SPELLINGS)
@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_writers_refuse_to_overwrite_their_input(tmp_path, monkeypatch, capsys, writer, kind):
    script, make_input, argv = WRITERS[writer]
    src = make_input(tmp_path / 'input.pth')
    before = src.read_bytes()
    dst = spelling(src, kind, monkeypatch)
    assert load_tool(script).main(argv(str(src), dst)) == 2
    one_line_error(capsys, script, f'{dst!r} is the same file as', f'{str(src)!r}')
    assert src.read_bytes() == before


@needs_links
@pytest.mark.parametrize('kind', SPELLINGS)
def test_fold_refuses_to_overwrite_its_inputs(tmp_path, monkeypatch, capsys, kind):
    config, ckpt = fold_inputs(tmp_path)
    before = ckpt.read_bytes()
    main = load_tool('tools/deploy/fold.py').main
    out = spelling(ckpt, kind, monkeypatch)
    assert main([str(config), str(ckpt), out]) == 2
    one_line_error(capsys, 'tools/deploy/fold.py', f'OUT {out!r} is the same file as CHECKPOINT')
    assert main([str(config), str(ckpt), str(tmp_path / 'f.pth'), '--save-model', out]) == 2
    one_line_error(capsys, 'tools/deploy/fold.py', f'--save-model {out!r} is the same file')
    assert ckpt.read_bytes() == before
    assert main([str(config), str(ckpt), str(config)]) == 2
    one_line_error(capsys, 'tools/deploy/fold.py', 'is the same file as CONFIG')
    assert main(
        [str(config),
         str(ckpt),
         str(tmp_path / 'f.pth'), '--save-model',
         str(tmp_path / 'f.pth')]) == 2
    one_line_error(capsys, 'tools/deploy/fold.py', 'is the same file as --save-model')
    assert config.read_text() == TINY_BACKBONE_CONFIG


def test_test_tool_refuses_out_onto_its_checkpoint(tmp_path):
    test_tool = load_tool('tools/test.py')
    ckpt = tmp_path / 'weights.pth'
    torch.save({'state_dict': {}}, ckpt)
    args = test_tool.parse_args([SEG_CONFIG, str(ckpt), '--out', str(ckpt)])
    with pytest.raises(test_tool.SETUP_ERRORS, match=r'--out .* is the same file as CHECKPOINT'):
        test_tool.setup_cfg(args)


def _half_written_save(obj, f, *args, **kwargs):
    """A torch.save that dies half way (disk full, Ctrl-C): some bytes, then an error."""
    with open(f, 'wb') as out:
        out.write(b'PK\x03\x04half')
    raise OSError(28, 'No space left on device')


@pytest.mark.parametrize('writer', ['mmpretrain_to_release', 'convnext_dcls_to_mmdcls', 'fold'])
def test_an_interrupted_save_leaves_the_destination_untouched(tmp_path, monkeypatch, writer):
    if writer == 'fold':
        config, src = fold_inputs(tmp_path)
        script, argv = 'tools/deploy/fold.py', [str(config), str(src)]
    else:
        script, make_input, _ = WRITERS[writer]
        src, argv = make_input(tmp_path / 'input.pth'), [str(tmp_path / 'input.pth')]
    main = load_tool(script).main
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous result')
    files = sorted(os.listdir(tmp_path))
    monkeypatch.setattr(torch, 'save', _half_written_save)
    with pytest.raises(OSError, match='No space left'):
        main(argv + [str(dst)])
    assert dst.read_bytes() == b'previous result'
    assert sorted(os.listdir(tmp_path)) == files  # no temporary file left behind
    monkeypatch.undo()
    assert main(argv + [str(dst)]) == 0  # and the same run, uninterrupted, replaces it
    assert torch.load(dst, weights_only=False) is not None


def test_an_interrupted_plot_leaves_the_destination_untouched(tmp_path, monkeypatch):
    import matplotlib.figure
    main = load_tool('tools/analysis/visualize_positions.py').main
    src = release_checkpoint(tmp_path / 'input.pth')
    out = tmp_path / 'positions.png'
    out.write_bytes(b'previous plot')
    real_savefig = matplotlib.figure.Figure.savefig

    def dies_half_way(self, fname, **kwargs):
        real_savefig(self, fname, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        main([str(src), '--out', str(out), '--dilated-kernel-size', '5'])
    assert out.read_bytes() == b'previous plot'
    assert sorted(os.listdir(tmp_path)) == ['input.pth', 'positions.png']
    monkeypatch.undo()
    assert main([str(src), '--out', str(out), '--dilated-kernel-size', '5']) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_make_tiny_datasets_leaves_no_half_written_file(tmp_path, monkeypatch):
    import cv2
    tool = load_tool('tools/misc/make_tiny_datasets.py')
    real_imwrite, calls = cv2.imwrite, []

    def dies_at_the_fifth_image(path, image, params=()):
        calls.append(path)
        if len(calls) == 5:
            with open(path, 'wb') as f:
                f.write(b'\xff\xd8 half a jpeg')
            raise KeyboardInterrupt
        return real_imwrite(path, image, params)

    monkeypatch.setattr(cv2, 'imwrite', dies_at_the_fifth_image)
    with pytest.raises(KeyboardInterrupt):
        tool.make_coco(str(tmp_path / 'tiny_coco'), splits={'train': 8})
    images = sorted(os.listdir(tmp_path / 'tiny_coco' / 'train2017'))
    assert images == [f'{i:06d}.jpg' for i in range(4)]  # the four complete ones, no other

    def dies_in_json(obj, f, **kwargs):
        f.write('{"images": [')
        raise KeyboardInterrupt

    monkeypatch.setattr(tool.json, 'dump', dies_in_json)
    monkeypatch.setattr(cv2, 'imwrite', real_imwrite)
    with pytest.raises(KeyboardInterrupt):
        tool.make_coco(str(tmp_path / 'tiny_coco'), splits={'train': 2})
    assert os.listdir(tmp_path / 'tiny_coco' / 'annotations') == []


# ------------------------------------------------------------------ unreadable checkpoints
def broken_checkpoint(tmp_path, kind):
    """A file named like a checkpoint: ``'truncated'`` (half of a real one), ``'empty'`` or
    ``'html'`` (what a failed download saves)."""
    path = tmp_path / f'{kind}.pth'
    if kind == 'truncated':
        data = release_checkpoint(tmp_path / 'whole.pth').read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'empty':
        path.write_bytes(b'')
    else:
        path.write_bytes(b'<!DOCTYPE html><title>404 Not Found</title>')
    return path


REASONS = {
    'truncated': 'truncated: a zip archive',
    'empty': 'the file is empty',
    'html': 'not a zip archive'
}


@pytest.mark.parametrize('kind', sorted(REASONS))
def test_readers_name_an_unreadable_checkpoint(tmp_path, capsys, kind):
    ckpt = broken_checkpoint(tmp_path, kind)
    config, _ = fold_inputs(tmp_path)
    out = str(tmp_path / 'out.pth')
    runs = {
        'tools/model_converters/mmpretrain_to_release.py': [str(ckpt), out],
        'tools/model_converters/convnext_dcls_to_mmdcls.py': [str(ckpt), out],
        'tools/deploy/fold.py': [str(config), str(ckpt), out],
        'tools/analysis/visualize_positions.py': [str(ckpt), '--out', out],
    }
    for script, argv in runs.items():
        assert load_tool(script).main(argv) == 2, script
        one_line_error(capsys, script, f'{ckpt}: not a readable torch checkpoint: ', REASONS[kind])
        assert not os.path.exists(out), script
    for script, argv in {
            'tools/test.py': [SEG_CONFIG, str(ckpt)],
            'tools/train.py': [SEG_CONFIG, '--resume', str(ckpt)]
    }.items():
        tool = load_tool(script)
        with pytest.raises(tool.SETUP_ERRORS, match=f'{ckpt}: not a readable torch checkpoint'):
            tool.setup_cfg(tool.parse_args(argv))


@pytest.mark.parametrize(
    'script',
    ['tools/model_converters/convnext_dcls_to_mmdcls.py', 'tools/deploy/fold.py', 'tools/test.py'])
def test_unreadable_checkpoint_exit_status(tmp_path, script):
    """As a process: one line, exit status 2, no traceback."""
    ckpt = broken_checkpoint(tmp_path, 'truncated')
    config = fold_inputs(tmp_path)[0] if script.endswith('fold.py') else SEG_CONFIG
    args = {
        'tools/model_converters/convnext_dcls_to_mmdcls.py': [ckpt, tmp_path / 'out.pth'],
        'tools/deploy/fold.py': [config, ckpt, tmp_path / 'out.pth'],
        'tools/test.py': [config, ckpt, '--work-dir', tmp_path / 'w'],
    }[script]
    proc = run_tool([script] + args, check=False, timeout=180)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stdout, proc.stdout[-3000:]
    errors = [line for line in proc.stdout.splitlines() if 'error:' in line]
    assert len(errors) == 1 and f'{ckpt}: not a readable torch checkpoint: truncated' in errors[0]
    assert not (tmp_path / 'out.pth').exists() and not (tmp_path / 'w').exists()
