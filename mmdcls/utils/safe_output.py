"""How the tools write their output files: never onto one of their inputs, never half-written.

* :func:`check_outputs` refuses an output path that names the same file as one of the tool's
  inputs, or as another of its outputs: the same path, another spelling of it, a symbolic link
  or a hard link to it (``os.path.samefile``; ``os.path.realpath`` for paths that do not exist
  yet). It raises :class:`SameFileError`, which the tools report in one line (exit status 2).
* :func:`safe_output` hands the writer a temporary path in the destination's folder and renames
  it onto the destination (``os.replace``, atomic within a file system) once the writer
  returns. A writer that raises (or a Ctrl-C) leaves the destination as it was and removes the
  temporary file; a process killed outright may leave a ``.<name>.*.tmp<ext>`` file beside an
  untouched destination.

Usage::

    check_outputs({'DST': args.dst}, {'SRC': args.src})  # before the work: fail fast
    with safe_output(args.dst) as tmp:
        torch.save(obj, tmp)
"""
import contextlib
import os
import os.path as osp
import secrets
import stat
from typing import Dict, Iterator, Optional

__all__ = ['SameFileError', 'same_file', 'check_outputs', 'safe_output']


class SameFileError(ValueError):
    """An output path that names the same file as an input (or another output) of a tool."""


def same_file(a: str, b: str) -> bool:
    """Whether the paths ``a`` and ``b`` name one file: ``os.path.samefile`` (symbolic and hard
    links included) when both exist, else their resolved paths (``os.path.realpath``) agree."""
    a, b = os.fspath(a), os.fspath(b)
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.realpath(a) == osp.realpath(b)


def check_outputs(outputs: Dict[str, Optional[str]],
                  inputs: Optional[Dict[str, Optional[str]]] = None) -> None:
    """Raises :class:`SameFileError` if an output is the same file as an input or as another
    output.

    Args:
        outputs: what the tool writes, ``{argument name: path}``; None paths are skipped.
        inputs: what the tool reads, likewise.
    """
    outputs = [(name, os.fspath(path)) for name, path in outputs.items() if path is not None]
    inputs = [(name, os.fspath(path)) for name, path in (inputs or {}).items() if path is not None]
    for i, (out_name, out) in enumerate(outputs):
        for in_name, path in inputs:
            if same_file(out, path):
                raise SameFileError(f'{out_name} {out!r} is the same file as {in_name} {path!r}; '
                                    'writing it would destroy the input: choose another path')
        for other_name, other in outputs[i + 1:]:
            if same_file(out, other):
                raise SameFileError(f'{out_name} {out!r} is the same file as {other_name} '
                                    f'{other!r}; give each output its own path')


def _new_file_mode(target: str) -> int:
    """The permissions ``open(target, 'w')`` would leave: the existing file's, else 0o666
    less the umask."""
    if osp.exists(target):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def safe_output(path: str, inputs: Optional[Dict[str, Optional[str]]] = None) -> Iterator[str]:
    """Yields a temporary path for the writer; on success renames it onto ``path``.

    The temporary file lies in the folder of ``path`` (after symbolic links: a link is written
    through to its target, as ``open`` would), which is created if missing, and keeps the
    extension of ``path`` (``.<name>.<random>.tmp<ext>``), so writers that pick the format from
    the extension (matplotlib, OpenCV) write the same bytes. If the body raises, the temporary
    file is removed and ``path`` is untouched.

    Args:
        path: the destination.
        inputs: ``{argument name: path}`` the destination must not be (:func:`check_outputs`).

    Raises:
        SameFileError: ``path`` is the same file as one of ``inputs``.
    """
    path = os.fspath(path)
    if inputs:
        check_outputs({'output': path}, inputs)
    target = osp.realpath(path)
    folder, name = osp.split(target)
    os.makedirs(folder, exist_ok=True)
    ext = osp.splitext(name)[1]
    mode = _new_file_mode(target)
    while True:
        tmp = osp.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp{ext}')
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.chmod(tmp, mode)  # the writer may have recreated it with other permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
