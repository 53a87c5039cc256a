"""Installs mmdcls: DCLS convolutions and ConvNeXt-DCLS backbones for mmdet 3.x / mmseg 1.x."""
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


setup(
    name='mmdcls',
    version=read_version(),
    description='Dilated Convolution with Learnable Spacings (DCLS) for OpenMMLab '
                'detection and segmentation',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['mmdcls', 'mmdcls.*']),
    # compiled on first use by mmdcls.ops.native (needs only a C compiler)
    package_data={'mmdcls.ops': ['csrc/*.c', 'csrc/*.h']},
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests'),
                    'build': read_requirements('build')},
    zip_safe=False,
)
