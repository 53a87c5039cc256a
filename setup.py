"""Installs mmdcls: DCLS convolutions and ConvNeXt-DCLS backbones for mmdet 3.x / mmseg 1.x.

Dependencies are declared the way a plugin declares them: ranges of what mmdcls imports
(requirements/runtime.txt), the toolkits as extras (``pip install "mmdcls[det]"``, ``[seg]``,
``[cls]``, ``[all]``), so installing mmdcls into an existing mmdet / mmseg environment never
replaces its torch or mmcv. The exact development pins are in requirements/constraints.txt.
"""
import os
import os.path as osp
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmdcls', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt, without comments and blank lines."""
    with open(osp.join(HERE, 'requirements', name + '.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def c_sources():
    """{package: [paths relative to it]} of every C source / header under mmdcls.

    mmdcls.ops.native compiles them on first use from the installed package, so the wheel must
    carry all of them; each file goes with the innermost package above it, wherever the ops
    keep their ``csrc`` folder."""
    package_data = {}
    root = osp.join(HERE, 'mmdcls')
    for dirpath, _, filenames in os.walk(root):
        sources = [f for f in filenames if f.endswith(('.c', '.h'))]
        if not sources:
            continue
        package_dir = dirpath
        while not osp.isfile(osp.join(package_dir, '__init__.py')):
            package_dir = osp.dirname(package_dir)
        package = osp.relpath(package_dir, HERE).replace(os.sep, '.')
        package_data.setdefault(package, []).extend(
            osp.relpath(osp.join(dirpath, f), package_dir).replace(os.sep, '/')
            for f in sorted(sources))
    return package_data


EXTRAS = {name: read_requirements(name) for name in ('det', 'seg', 'cls', 'tests', 'build')}
EXTRAS['all'] = EXTRAS['det'] + EXTRAS['seg'] + EXTRAS['cls']

setup(
    name='mmdcls',
    version=read_version(),
    description='Dilated Convolution with Learnable Spacings (DCLS) for OpenMMLab '
    'detection and segmentation',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read() if osp.exists(
        osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['mmdcls', 'mmdcls.*']),
    # compiled on first use by mmdcls.ops.native (needs only a C compiler)
    package_data=c_sources(),
    install_requires=read_requirements('runtime'),
    extras_require=EXTRAS,
    zip_safe=False,
)
