"""mmdcls.deploy uses the public API of the packages it imports from: no private names."""
import ast
import glob
import importlib
import os.path as osp

import mmdcls.deploy

DEPLOY_DIR = osp.dirname(mmdcls.deploy.__file__)
SOURCES = sorted(glob.glob(osp.join(DEPLOY_DIR, '*.py')))


def _imports(path):
    """``(module, name)`` of every ``from module import name`` of another package."""
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name


def test_deploy_imports_only_public_names():
    assert SOURCES
    for path in SOURCES:
        for module, name in _imports(path):
            where = f'{osp.basename(path)}: from {module} import {name}'
            assert not any(part.startswith('_') for part in module.split('.')), where
            assert not name.startswith('_'), where
            public = getattr(importlib.import_module(module), '__all__', None)
            if module.startswith('mmdcls') and public is not None:
                assert name in public, f'{where}: not in {module}.__all__'
