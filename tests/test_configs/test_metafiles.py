"""configs/*/metafile.yml (OpenMMLab model-index format) and README.md: every config of a folder
is listed, every listed path exists, and the figures of the two documents agree."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs')
#: config folders (``_base_`` holds the pieces configs inherit, not configs)
FOLDERS = sorted(
    osp.basename(d) for d in glob.glob(osp.join(CONFIG_DIR, '*'))
    if osp.isdir(d) and osp.basename(d) != '_base_')
#: the metric names of the model-index format that the configs' tasks use
METRICS = {
    'Image Classification': {'Top 1 Accuracy'},
    'Object Detection': {'box AP'},
    'Instance Segmentation': {'mask AP'},
    'Semantic Segmentation': {'mIoU', 'mIoU(ms+flip)'},
}


def _metafile(folder):
    with open(osp.join(CONFIG_DIR, folder, 'metafile.yml')) as f:
        return yaml.safe_load(f)


def test_every_folder_has_a_metafile_and_a_readme():
    assert {'convnext_dcls', 'convnext_baseline', 'imagenet', '_demo_'} <= set(FOLDERS)
    for folder in FOLDERS:
        for name in ('metafile.yml', 'README.md'):
            assert osp.isfile(osp.join(CONFIG_DIR, folder, name)), f'{folder}/{name}'


@pytest.mark.parametrize('folder', FOLDERS)
def test_metafile_lists_every_config_and_only_existing_paths(folder):
    meta = _metafile(folder)
    collections = {c['Name']: c for c in meta['Collections']}
    for collection in collections.values():
        assert osp.isfile(osp.join(ROOT, collection['README'])), collection['README']
        assert set(collection['Paper']) == {'URL', 'Title'}
    names = [m['Name'] for m in meta['Models']]
    assert len(names) == len(set(names)), 'model names must be unique'
    listed = []
    for model in meta['Models']:
        assert model['In Collection'] in collections, model['Name']
        config = model['Config']
        assert config.startswith(f'configs/{folder}/'), config
        assert osp.isfile(osp.join(ROOT, config)), config
        assert osp.basename(config) == model['Name'] + '.py'
        listed.append(config)
        for result in model.get('Results', []):
            assert set(result) == {'Task', 'Dataset', 'Metrics'}, model['Name']
            assert set(result['Metrics']) <= METRICS[result['Task']], model['Name']
            assert all(isinstance(v, float) for v in result['Metrics'].values())
        if 'Weights' in model:
            assert model['Weights'].startswith('https://'), model['Name']
    configs = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(CONFIG_DIR, folder, '*.py')))
    assert sorted(listed) == configs


@pytest.mark.parametrize('folder', FOLDERS)
def test_readme_table_has_every_config_with_the_metafile_figures(folder):
    with open(osp.join(CONFIG_DIR, folder, 'README.md')) as f:
        rows = {}
        for line in f:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            for cell in cells:
                if cell.startswith('[') and cell.endswith('.py)'):
                    rows[cell[1:cell.index(']')]] = cells
    for model in _metafile(folder)['Models']:
        config = osp.basename(model['Config'])
        assert config in rows, f'{folder}/README.md has no row for {config}'
        row = ' | '.join(rows[config])
        for result in model.get('Results', []):
            for value in result['Metrics'].values():
                assert f'{value:.1f}' in row, (config, value, row)
        if 'Results' not in model:
            assert 'not published' in rows[config] or 'none' in rows[config], row


def test_published_figures_of_the_release():
    """The DCLS figures of the release (ImageNet top-1, COCO Cascade box / mask AP, ADE20K
    UperNet mIoU), T / S / B."""

    def metrics(folder, name):
        model = next(m for m in _metafile(folder)['Models'] if m['Name'] == name)
        return {k: v for r in model['Results'] for k, v in r['Metrics'].items()}

    for size, top1, box, mask, miou in (('t', 82.5, 51.2, 44.5, 47.1),
                                        ('s', 83.7, 52.8, 45.6, 48.4), ('b', 84.1, 53.0, 46.0,
                                                                        49.3)):
        assert metrics('imagenet', f'convnext-dcls-{size}_32xb128_in1k') == {'Top 1 Accuracy': top1}
        assert metrics(
            'convnext_dcls',
            f'cascade-mask-rcnn_convnext-dcls-{size}_fpn_giou-4conv1fc_ms-crop-3x_coco') == {
                'box AP': box,
                'mask AP': mask
            }
        assert metrics('convnext_dcls',
                       f'upernet_convnext-dcls-{size}_8xb2-160k_ade20k-512x512') == {
                           'mIoU': miou
                       }


def test_model_index_imports_every_metafile():
    """model-index.yml at the root (what mim and OpenMMLab's tooling read) imports each
    folder's metafile."""
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    assert sorted(imports) == sorted(f'configs/{folder}/metafile.yml' for folder in FOLDERS)
