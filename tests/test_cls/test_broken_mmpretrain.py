"""A broken mmpretrain installation (here: one whose import raises, as a torchvision built for
another torch does) leaves ``import mmdcls`` and the detection / segmentation side working, with a
warning that names the error. Runs in every lane: the broken package is a stand-in on sys.path."""
import os
import subprocess
import sys


def test_import_mmdcls_survives_a_broken_mmpretrain(tmp_path):
    fake = tmp_path / 'mmpretrain'
    fake.mkdir()
    (fake /
     '__init__.py').write_text("raise ImportError('operator torchvision::nms does not exist')\n")
    code = ('import warnings\n'
            'with warnings.catch_warnings(record=True) as caught:\n'
            '    warnings.simplefilter("always")\n'
            '    import mmdcls\n'
            '    from mmdcls.models import ConvNeXtDCLS\n'
            'from mmdcls.registry import MODELS\n'
            'assert MODELS.get("ConvNeXtDCLS") is ConvNeXtDCLS\n'
            'assert MODELS.get("ConvNeXtDCLSClsHead") is None\n'
            'print([str(w.message) for w in caught if "mmpretrain" in str(w.message)])\n')
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, '-c', code],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'torchvision::nms does not exist' in proc.stdout
    assert 'ConvNeXtDCLSClsHead is not registered' in proc.stdout
