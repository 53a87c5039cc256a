"""Environment summary for bug reports: ``python -m mmdcls.utils.collect_env``.

Every entry is collected on its own, so a missing or broken toolkit shows up as
``not installed`` / ``error: ...`` in the summary instead of a traceback.
"""
import importlib
import importlib.metadata
import os
import platform
import sys
from collections import OrderedDict

__all__ = ['collect_env', 'format_env', 'main']

NOT_INSTALLED = 'not installed'


def _version(module_name, dist_name=None):
    """``module.__version__`` (else the distribution's version), ``'not installed'``, or
    ``'error: ...'`` if the import fails."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.split('.')[0] == e.name.split('.')[0]:
            return NOT_INSTALLED
        return f'error: {type(e).__name__}: {e}'
    except Exception as e:  # an installed but broken toolkit: report why, keep collecting
        return f'error: {type(e).__name__}: {e}'
    version = getattr(module, '__version__', None)
    if version is None and dist_name is not None:
        try:
            version = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return str(version or 'unknown')


def _is_mmcv_lite():
    """Whether mmcv comes from the ``mmcv-lite`` distribution (same package, no compiled ops)."""
    for dist in ('mmcv', 'mmcv-lite'):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return dist == 'mmcv-lite'
    return False


def mmcv_ops_status():
    """Whether mmcv's compiled ops load and run: one CPU ``nms`` on two overlapping boxes.

    Returns:
        str: ``'ok'``, ``'error: <why>'``, or ``'not installed ...'`` without mmcv or with
        ``mmcv-lite``.
    """
    try:
        import mmcv  # noqa: F401
    except ImportError:
        return NOT_INSTALLED
    if _is_mmcv_lite():
        return 'not installed (mmcv-lite: mmcv without compiled ops)'
    try:
        import torch
        from mmcv.ops import nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        scores = torch.tensor([0.9, 0.8])
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        if keep.tolist() != [0]:
            return f'error: nms kept {keep.tolist()}, expected [0]'
    except Exception as e:
        return f'error: {type(e).__name__}: {e}'
    return 'ok'


def native_status():
    """State of mmdcls's C library (fused construction, direct and FFT depthwise convs).

    Returns:
        str: ``'ok (<path>)'``, ``'disabled (MMDCLS_NATIVE=0)'`` or ``'unavailable: <why>'``.
    """
    try:
        from mmdcls.ops.kernels import cpu
        if cpu.mode() == '0':
            return f'disabled ({cpu.ENV_VAR}=0)'
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the reason is reported here instead
            library = cpu.library()
        if library is None:
            return f'unavailable: {cpu.failure_reason()}'
        return f'ok ({library._name})'
    except Exception as e:
        return f'error: {type(e).__name__}: {e}'


def collect_env():
    """Collect what a bug report needs.

    Returns:
        OrderedDict[str, str]: name -> value, in print order.
    """
    env = OrderedDict()
    env['sys.platform'] = sys.platform
    env['Python'] = sys.version.replace('\n', ' ')
    env['Machine'] = platform.machine()
    env['CPU count'] = str(os.cpu_count())
    try:
        import torch
    except ImportError:
        env['PyTorch'] = NOT_INSTALLED
    else:
        env['PyTorch'] = torch.__version__
        env['PyTorch threads'] = (f'intra-op {torch.get_num_threads()}, '
                                  f'inter-op {torch.get_num_interop_threads()}')
        env['CUDA available'] = str(torch.cuda.is_available())
        if torch.cuda.is_available():
            env['GPU'] = ', '.join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        env['PyTorch CUDA build'] = str(torch.version.cuda)
        try:
            # mmengine's collector adds GCC, CUDA_HOME/NVCC and OpenCV; optional.
            from mmengine.utils.dl_utils import collect_env as mmengine_collect_env
            extra = mmengine_collect_env()
            for key in ('GCC', 'CUDA_HOME', 'NVCC', 'OpenCV'):
                if key in extra:
                    env[key] = str(extra[key])
        except Exception as e:
            env['mmengine env'] = f'error: {type(e).__name__}: {e}'
        env['PyTorch build'] = torch.__config__.show().strip()
    env['NumPy'] = _version('numpy')
    env['MMEngine'] = _version('mmengine')
    env['MMCV'] = _version('mmcv')
    env['MMCV compiled ops'] = mmcv_ops_status()
    env['MMDetection'] = _version('mmdet')
    env['MMSegmentation'] = _version('mmseg')
    env['MMPretrain'] = _version('mmpretrain')
    env['DCLS reference (dcls)'] = _version('DCLS', 'dcls')
    env['mmdcls'] = _version('mmdcls')
    env['mmdcls native (C)'] = native_status()
    return env


def format_env(env):
    """``name: value`` lines; multi-line values are indented under their name."""
    lines = []
    for name, value in env.items():
        value_lines = str(value).splitlines() or ['']
        lines.append(f'{name}: {value_lines[0]}')
        lines.extend('    ' + line for line in value_lines[1:])
    return '\n'.join(lines)


def main():
    print(format_env(collect_env()))


if __name__ == '__main__':
    main()
