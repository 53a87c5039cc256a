"""tools/misc/make_tiny_datasets.py: deterministic, exact masks, the layouts the toolkits read."""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
from conftest import load_tool

_tool = load_tool('tools/misc/make_tiny_datasets.py')
ADE_CLASSES, COCO_CLASSES, SPLITS = _tool.ADE_CLASSES, _tool.COCO_CLASSES, _tool.SPLITS
TEXTURE_CLASSES, TEXTURE_SPLITS = _tool.TEXTURE_CLASSES, _tool.TEXTURE_SPLITS
TEXTURE_IMAGE_SIZE = _tool.TEXTURE_IMAGE_SIZE
make_all, make_coco = _tool.make_all, _tool.make_coco


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    make_all(str(tmp_path / 'a'), seed=0)
    make_all(str(tmp_path / 'b'), seed=0)
    make_all(str(tmp_path / 'c'), seed=1)
    for name in ('tiny_coco', 'tiny_ade', 'tiny_textures'):
        a, b, c = (_digest(str(tmp_path / x / name)) for x in 'abc')
        assert a == b, f'{name} differs between two runs with seed 0'
        assert a != c, f'{name} does not depend on the seed'


def test_second_call_keeps_existing_data(tmp_path):
    make_all(str(tmp_path), seed=0)
    before = _digest(str(tmp_path))
    assert 'already' in make_all(str(tmp_path), seed=1)
    assert _digest(str(tmp_path)) == before


def test_coco_annotations_are_exact(tmp_path):
    from pycocotools.coco import COCO
    make_coco(str(tmp_path), seed=0, splits={'train': 6})
    ann_file = str(tmp_path / 'annotations' / 'instances_train2017.json')
    coco = COCO(ann_file)
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(COCO_CLASSES)
    assert len(coco.getImgIds()) == 6
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 6
    for ann in anns:
        mask = coco.annToMask(ann)
        img = coco.loadImgs(ann['image_id'])[0]
        assert mask.shape == (img['height'], img['width'])
        # the polygon, rasterised by pycocotools, covers the stored area up to its boundary
        assert abs(int(mask.sum()) - ann['area']) <= 0.15 * ann['area']
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        # bbox = extent of the cv2-filled polygon (boundary pixels included); pycocotools'
        # rasteriser leaves out up to a pixel on the far edges
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() + 1 - (x + w)) <= 2 and abs(ys.max() + 1 - (y + h)) <= 2
    with open(ann_file) as f:
        assert json.load(f)['images'][0]['file_name'] == '000000.jpg'


def test_ade_layout_and_labels(tiny_data):
    root = tiny_data['ade']
    for split, n in (('training', 120), ('validation', 30)):
        images = sorted(os.listdir(osp.join(root, 'images', split)))
        maps = sorted(os.listdir(osp.join(root, 'annotations', split)))
        assert len(images) == len(maps) == n
        assert [i[:-4] for i in images] == [m[:-4] for m in maps]
    values = set()
    for name in sorted(os.listdir(osp.join(root, 'annotations', 'training')))[:20]:
        label = cv2.imread(osp.join(root, 'annotations', 'training', name), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
        values |= set(np.unique(label).tolist())
    # 0 = "other" (ignored with reduce_zero_label), 1..N the classes: all of them present
    assert values == set(range(len(ADE_CLASSES) + 1))


def test_split_sizes(tiny_data):
    for split, n in SPLITS.items():
        assert len(os.listdir(osp.join(tiny_data['coco'], f'{split}2017'))) == n


def _edge_ratio(path):
    """Mean |vertical gradient| / mean |horizontal gradient| of an image, noise blurred away:
    >> 1 for horizontal stripes, << 1 for vertical ones, ~1 for diagonals and checkerboards."""
    img = cv2.GaussianBlur(cv2.imread(path).astype(np.float64).sum(axis=2), (5, 5), 0)
    return np.abs(np.diff(img, axis=0)).mean() / np.abs(np.diff(img, axis=1)).mean()


def test_textures_layout_balance_and_orientations(tiny_data):
    """The folder layout of mmpretrain's CustomDataset, balanced classes, and each class the
    orientation its name says (the label is right); colours do not give the class away."""
    root = osp.join(osp.dirname(tiny_data['coco']), 'tiny_textures')
    assert sorted(os.listdir(root)) == sorted(TEXTURE_SPLITS)
    means = {}
    for split, n in TEXTURE_SPLITS.items():
        assert sorted(os.listdir(osp.join(root, split))) == list(TEXTURE_CLASSES)
        counts = [len(os.listdir(osp.join(root, split, k))) for k in TEXTURE_CLASSES]
        assert counts == [n // len(TEXTURE_CLASSES)] * len(TEXTURE_CLASSES)
    for kind in TEXTURE_CLASSES:
        folder = osp.join(root, 'train', kind)
        paths = [osp.join(folder, f) for f in sorted(os.listdir(folder))[:30]]
        img = cv2.imread(paths[0])
        assert img.shape == (TEXTURE_IMAGE_SIZE, TEXTURE_IMAGE_SIZE, 3)
        ratios = np.array([_edge_ratio(p) for p in paths])
        if kind == 'horizontal':
            assert (ratios > 1.4).all(), ratios
        elif kind == 'vertical':
            assert (ratios < 1 / 1.3).all(), ratios
        else:  # +-45 degree stripes and checkerboards: as many vertical as horizontal edges
            assert (abs(np.log(ratios)) < 0.2).all(), ratios
        means[kind] = np.mean([cv2.imread(p).mean() for p in paths])
    assert max(means.values()) - min(means.values()) < 25, means
