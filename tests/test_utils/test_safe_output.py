"""mmdcls.utils.safe_output: an output is never one of the inputs, and never half-written."""
import os
import stat
import sys

import pytest

from mmdcls.utils.safe_output import SameFileError, check_outputs, safe_output, same_file

needs_links = pytest.mark.skipif(sys.platform == 'win32', reason='symbolic / hard links')


def _spellings(tmp_path, monkeypatch):
    """``{kind: path}`` naming ``tmp_path / 'in.pth'`` in four ways."""
    src = tmp_path / 'in.pth'
    src.write_bytes(b'input')
    (tmp_path / 'sub').mkdir()
    os.symlink(src, tmp_path / 'link.pth')
    os.link(src, tmp_path / 'hard.pth')
    monkeypatch.chdir(tmp_path / 'sub')
    return {
        'same path': str(src),
        'relative path': os.path.join('..', 'sub', '..', 'in.pth'),
        'symlink': str(tmp_path / 'link.pth'),
        'hard link': str(tmp_path / 'hard.pth'),
    }


@needs_links
def test_every_spelling_of_an_input_is_refused(tmp_path, monkeypatch):
    src = str(tmp_path / 'in.pth')
    for kind, dst in _spellings(tmp_path, monkeypatch).items():
        assert same_file(dst, src), kind
        with pytest.raises(SameFileError) as info:
            check_outputs({'DST': dst}, {'SRC': src})
        message = str(info.value)
        assert f'DST {dst!r}' in message and f'SRC {src!r}' in message, kind
        assert '\n' not in message
        with pytest.raises(SameFileError):
            with safe_output(dst, inputs={'SRC': src}):
                pytest.fail('the body must not run')
    assert (tmp_path / 'in.pth').read_bytes() == b'input'


def test_distinct_paths_pass_and_outputs_must_differ(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    src.write_bytes(b'input')
    check_outputs({'DST': str(dst), '--extra': None}, {'SRC': str(src), '--config': None})
    assert not same_file(str(dst), str(src))
    # two outputs that do not exist yet, one path spelled two ways
    with pytest.raises(SameFileError, match=r"OUT .* is the same file as --save-model"):
        check_outputs({'OUT': str(dst), '--save-model': str(tmp_path / '.' / 'out.pth')})


def test_success_replaces_the_destination_keeping_its_permissions(tmp_path):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')
    os.chmod(dst, 0o640)
    with safe_output(str(dst)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith('.pth')
        assert dst.read_bytes() == b'old'  # untouched while the writer works
        with open(tmp, 'wb') as f:
            f.write(b'new')
    assert dst.read_bytes() == b'new'
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ['out.pth']


def test_new_file_gets_the_umask_permissions_and_its_folder(tmp_path):
    dst = tmp_path / 'new' / 'folder' / 'out.json'
    umask = os.umask(0o022)
    try:
        with safe_output(str(dst)) as tmp:
            with open(tmp, 'w') as f:
                f.write('{}')
    finally:
        os.umask(umask)
    assert dst.read_text() == '{}'
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644


@pytest.mark.parametrize('error', [RuntimeError('disk full'), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_the_destination_untouched(tmp_path, error):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')
    with pytest.raises(type(error)):
        with safe_output(str(dst)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise error
    assert dst.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['out.pth']  # no temporary file left


@needs_links
def test_a_symlinked_destination_is_written_through(tmp_path):
    target = tmp_path / 'target.png'
    target.write_bytes(b'old')
    link = tmp_path / 'link.png'
    os.symlink(target, link)
    with safe_output(str(link)) as tmp:
        assert os.path.basename(tmp).endswith('.png')
        with open(tmp, 'wb') as f:
            f.write(b'new')
    assert os.path.islink(link) and target.read_bytes() == b'new'
