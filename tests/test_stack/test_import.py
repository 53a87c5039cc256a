"""``import mmdcls`` works and mmdcls's registries hang under mmengine's root registries."""
import os.path as osp
import subprocess
import sys
import textwrap

import mmengine.registry as mmengine_registry

import mmdcls
from mmdcls import registry
from mmdcls.version import __version__

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_version():
    assert mmdcls.__version__ == __version__
    assert isinstance(mmdcls.version_info, tuple) and mmdcls.version_info[0] == int(
        __version__.split('.')[0])


def test_registries_are_scoped_children_of_mmengine_roots():
    pairs = {
        'MODELS': mmengine_registry.MODELS,
        'HOOKS': mmengine_registry.HOOKS,
        'OPTIM_WRAPPER_CONSTRUCTORS': mmengine_registry.OPTIM_WRAPPER_CONSTRUCTORS,
        'OPTIM_WRAPPERS': mmengine_registry.OPTIM_WRAPPERS,
    }
    for name, root in pairs.items():
        child = getattr(registry, name)
        assert child.scope == 'mmdcls', name
        assert child.parent is root, name
        assert root.children.get('mmdcls') is child, name


def _run(code, cwd):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_config_custom_imports_imports_mmdcls(tmp_path):
    """A config's custom_imports imports mmdcls in a fresh interpreter, from any directory,
    and a type in mmdcls's scope then builds through another toolkit's registry."""
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)\n"
                        "model = dict(type='mmdcls.ProbeForTest', width=3)\n")
    result = _run(
        f"""
        import sys
        from mmengine.config import Config
        assert 'mmdcls' not in sys.modules
        cfg = Config.fromfile({str(cfg_file)!r})
        assert 'mmdcls' in sys.modules, 'custom_imports did not import mmdcls'
        import torch.nn as nn
        from mmdcls.registry import MODELS

        @MODELS.register_module()
        class ProbeForTest(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.width = width

        from mmengine.registry import MODELS as ROOT
        built = ROOT.build(cfg.model)
        assert type(built).__name__ == 'ProbeForTest' and built.width == 3
        print('OK')
        """,
        cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith('OK')
