"""What ``tools/train.py`` / ``tools/test.py`` (and the analysis tools) do before building:
load the config, pick its toolkit, prepare a CPU-only distributed run.

The toolkit is the config's ``default_scope``: ``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``
(:data:`mmdcls.utils.config_checks.TOOLKITS`). mmdcls needs none of them to import, and an
environment may lack one (mmpretrain needs a torchvision built for the installed torch), so
the scope is read from the config file *before* it is loaded (:func:`detect_scope`: loading an
``mmpretrain::`` base already needs mmpretrain) and a missing or broken toolkit stops the tool
with :class:`ToolkitNotInstalledError`, naming the config, the toolkit and how to install it.
The checks of the config's content are :mod:`mmdcls.utils.config_checks`.
"""
import ast
import importlib
import importlib.util
import logging
import os.path as osp
import sys
from typing import Iterable, Optional

from .config_checks import TOOLKITS, check_default_scope

__all__ = [
    'ToolkitNotInstalledError', 'TOOLKIT_REQUIREMENTS', 'detect_scope', 'import_toolkit',
    'load_tool_config', 'select_toolkit', 'apply_toolkit_defaults', 'prepare_cpu_distributed'
]

#: the pip requirement of each toolkit (the versions mmdcls is tested with) and what to know
TOOLKIT_REQUIREMENTS = {
    'mmdet': ('mmdet==3.3.0', ''),
    'mmseg': ('mmsegmentation==1.2.2', ''),
    'mmpretrain': ('mmpretrain==1.2.0', ' mmpretrain imports torchvision, which must be the '
                   "build matching the installed torch (README, 'Training and testing')."),
}


class ToolkitNotInstalledError(ModuleNotFoundError):
    """The toolkit a config runs in (its ``default_scope``) is not installed or does not
    import in this Python environment."""


def _read_python_config(path: str) -> Optional[ast.Module]:
    if not path.endswith('.py') or not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        try:
            return ast.parse(f.read(), path)
        except SyntaxError:
            return None  # Config.fromfile reports it, with its own context


def _string_values(node: ast.AST) -> list:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def detect_scope(path: str, _seen: Optional[set] = None) -> Optional[str]:
    """The ``default_scope`` a Python config file will have, read without executing it (so
    without importing any toolkit).

    The file's own top-level ``default_scope = '...'`` wins; otherwise the first of its bases
    that tells: a toolkit base ``'mmpretrain::...'`` (scope ``mmpretrain``: OpenMMLab runtimes
    set their package's scope), a local base file (read the same way), or, in the new
    pure-Python style, ``from mmdet.configs... import *`` inside ``with read_base():``. None when
    nothing tells (a json / yaml config, a scope computed at load time): the loaded config's
    ``default_scope`` then decides (:func:`select_toolkit`).
    """
    path = osp.abspath(path)
    seen = set() if _seen is None else _seen
    if path in seen:
        return None
    seen.add(path)
    tree = _read_python_config(path)
    if tree is None:
        return None
    bases = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if 'default_scope' in names:
                scopes = _string_values(node.value)
                if scopes:
                    return scopes[0]
            if '_base_' in names:
                bases += _string_values(node.value)
        elif isinstance(node, ast.With):
            for stmt in node.body:
                if (isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module
                        and stmt.module.split('.')[0] in TOOLKITS):
                    bases.append(stmt.module.split('.')[0] + '::')
    for base in bases:
        if '::' in base:
            return base.partition('::')[0]
        scope = detect_scope(osp.join(osp.dirname(path), base), seen)
        if scope is not None:
            return scope
    return None


def import_toolkit(scope: str, config: str = '<config>'):
    """Imports the toolkit of ``scope`` and returns its ``register_all_modules``.

    Raises:
        ToolkitNotInstalledError: the toolkit is not installed, or its import fails (e.g. a
            torchvision built for another torch: ``operator torchvision::nms does not exist``).
    """
    requirement, note = TOOLKIT_REQUIREMENTS[scope]
    where = f'{config}: default_scope {scope!r} runs in {scope}'
    if importlib.util.find_spec(scope) is None:
        raise ToolkitNotInstalledError(
            f'{where}, which is not installed in this Python environment ({sys.executable}); '
            f"install it with pip install '{requirement}'.{note}",
            name=scope)
    try:
        module = importlib.import_module(f'{scope}.utils')
    except Exception as err:  # noqa: BLE001 - re-raised with the toolkit named, never swallowed
        raise ToolkitNotInstalledError(
            f'{where}, which is installed but does not import here ({type(err).__name__}: '
            f'{err}).{note}',
            name=scope) from err
    return module.register_all_modules


def load_tool_config(path: str,
                     launcher: str = 'none',
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None):
    """The config a tool runs: the file, then ``--cfg-options``; ``work_dir`` from the command
    line, else the file's, else ``./work_dirs/<config name>``.

    The toolkit the file names (:func:`detect_scope`) is imported first: if it is missing or
    broken the tool stops here with :class:`ToolkitNotInstalledError`, before mmengine fails
    on the config's ``toolkit::`` bases with a less direct message.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    scope = detect_scope(path)
    if scope in TOOLKITS:
        import_toolkit(scope, path)
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def select_toolkit(cfg) -> str:
    """The toolkit of a loaded config (its ``default_scope``, checked by
    :func:`~mmdcls.utils.config_checks.check_default_scope`); imports it and registers its
    modules with it as the default scope.

    Returns:
        str: ``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``.
    """
    scope = check_default_scope(cfg)
    import_toolkit(scope, cfg.filename)(init_default_scope=True)
    return scope


def apply_toolkit_defaults(
    cfg,
    scope: str,
    loaders: Iterable[str] = ('train_dataloader', 'val_dataloader', 'test_dataloader')
) -> None:
    """What the toolkit's own ``tools/train.py`` / ``test.py`` add to a config, where the
    config does not say: for mmpretrain, dataloaders collate with ``default_collate`` (its
    tools' default; mmengine's is ``pseudo_collate``). Nothing for mmdet / mmseg."""
    if scope != 'mmpretrain':
        return
    for key in loaders:
        loader = cfg.get(key)
        if loader is not None and 'collate_fn' not in loader:
            loader['collate_fn'] = dict(type='default_collate')


def prepare_cpu_distributed(cfg) -> bool:
    """Makes a distributed run work on a machine without CUDA (gloo, CPU DDP).

    Any launcher: the toolkits' default runtimes ask for the nccl backend, which needs CUDA;
    ``env_cfg.dist_cfg.backend`` becomes gloo (logged). ``--launcher pytorch`` also: mmengine
    0.10.7 calls ``torch.cuda.set_device`` in ``init_dist`` and gives DDP
    ``device_ids=[LOCAL_RANK]``, both of which fail without CUDA. Here the process group is
    initialised with gloo (from torchrun's environment) before the Runner is built, so the
    Runner skips its own ``init_dist``, and ``model_wrapper_cfg`` gets ``device_ids=None``.
    Does nothing (returns False) with CUDA or without a launcher; True when it initialised
    the process group.
    """
    import torch
    import torch.distributed as torch_dist
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    configured = cfg.get('env_cfg', {}).get('dist_cfg')
    if configured is not None and configured.get('backend') == 'nccl':
        from mmengine.logging import print_log
        configured['backend'] = 'gloo'
        print_log(
            'no CUDA: env_cfg.dist_cfg.backend nccl -> gloo',
            logger='current',
            level=logging.WARNING)
    if launcher != 'pytorch':
        return False
    dist_cfg = dict(configured or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend, **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    return True


def main(argv=None) -> int:
    """``python -m mmdcls.utils.tool_setup CONFIG``: prints the config's toolkit and exits 0 if
    it imports, else prints why and exits 2. ``tools/dist_*.sh`` run it before starting one
    process per device, so a missing toolkit is one line instead of one traceback per rank."""
    import argparse
    parser = argparse.ArgumentParser(description=main.__doc__.split('\n\n')[0])
    parser.add_argument('config')
    args = parser.parse_args(argv)
    try:
        if not osp.isfile(args.config):
            raise FileNotFoundError(f'config file not found: {args.config}')
        scope = detect_scope(args.config)
        if scope in TOOLKITS:
            import_toolkit(scope, args.config)
    except (FileNotFoundError, ToolkitNotInstalledError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(scope or 'unknown (decided when the config is loaded)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
