"""Generate the embedded synthetic datasets used by the demo and the tool tests.

``python tools/misc/make_tiny_datasets.py [--out-dir data] [--seed 0] [--force]`` writes

* ``data/tiny_coco/``: COCO-format instance segmentation, ``{train,val}2017/*.jpg`` and
  ``annotations/instances_{train,val}2017.json``; scenes of 1-3 shapes (circle, square,
  triangle) on a noisy gradient, each annotated with its exact polygon (the pixels of the mask
  are the rasterised polygon), bbox and area;
* ``data/tiny_ade/``: the ADE20K folder layout, ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png`` label maps with ADE's convention: 0 = "other"
  (ignored with ``reduce_zero_label=True``), classes 1..N = :data:`ADE_CLASSES` (sky and ground
  split at a random horizon, shapes on top, plus a few unlabelled clutter blobs);
* ``data/tiny_textures/``: image classification in the folder layout of mmpretrain's
  ``CustomDataset``, ``{train,val}/<class>/*.jpg``, 64 x 64 two-colour patterns of
  :data:`TEXTURE_CLASSES` (balanced), for the demo's pretraining stage.

Everything comes from one ``numpy.random.Generator`` per split, so the same seed gives byte-
identical files. Each file is written through a temporary file renamed onto it, so an
interrupted run leaves no half-written file (the next run sees the datasets incomplete and
regenerates them). Takes a few seconds.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

import cv2
import numpy as np

from mmdcls.utils.safe_output import safe_output

#: instance classes of tiny_coco (category ids 1..3)
COCO_CLASSES = ('circle', 'square', 'triangle')
#: semantic classes of tiny_ade, label value i + 1 (0 is "other")
ADE_CLASSES = ('sky', 'ground', 'circle', 'square', 'triangle')
#: display palettes (RGB)
COCO_PALETTE = [(220, 20, 60), (0, 130, 230), (20, 180, 60)]
ADE_PALETTE = [(135, 206, 235), (140, 100, 60), (220, 20, 60), (0, 130, 230), (20, 180, 60)]
#: classes of tiny_textures, sorted: the folder names, whose order CustomDataset uses as labels
TEXTURE_CLASSES = ('checker', 'diagonal', 'horizontal', 'vertical')

IMAGE_SIZE = 128
SPLITS = {'train': 120, 'val': 30}
ADE_SPLITS = {'training': 120, 'validation': 30}
TEXTURE_SPLITS = {'train': 448, 'val': 96}
TEXTURE_IMAGE_SIZE = 64
JPEG_QUALITY = 95
DEFAULT_SEED = 0


def shape_polygon(rng, kind, size):
    """A polygon (K, 2) float32, in (x, y) pixels, of one shape of ``kind`` inside a
    ``size`` x ``size`` image, at least 2 px from the border. Circles are 24-gons."""
    radius = rng.uniform(0.12, 0.24) * size
    cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    elif kind == 'square':
        t = angle + np.arange(4) * np.pi / 2
    elif kind == 'triangle':
        t = angle + np.arange(3) * 2 * np.pi / 3
    else:
        raise ValueError(f'kind must be one of {COCO_CLASSES}, got {kind!r}')
    pts = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)
    # Snap to integer pixels so the stored polygon is exactly what cv2.fillPoly rasterises.
    return np.round(pts).astype(np.int32)


def random_color(rng, avoid=None):
    """An RGB uint8 colour at least 80 (L1) away from ``avoid`` (the local background)."""
    while True:
        color = rng.integers(0, 256, size=3)
        if avoid is None or np.abs(color - np.asarray(avoid)).sum() > 80:
            return color


def background(rng, size):
    """A (size, size, 3) uint8 noisy linear gradient."""
    c0, c1 = rng.integers(40, 216, size=(2, 3))
    w = np.linspace(0, 1, size)[None, :, None]
    img = c0[None, None] * (1 - w) + c1[None, None] * w
    img = np.repeat(img, size, axis=0) + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def place_shapes(rng, size, max_shapes=3, max_tries=50):
    """1..max_shapes non-overlapping shapes: list of ``(class_index, polygon, mask)``."""
    count = int(rng.integers(1, max_shapes + 1))
    occupied = np.zeros((size, size), np.uint8)
    shapes = []
    for _ in range(max_tries):
        if len(shapes) == count:
            break
        cls = int(rng.integers(len(COCO_CLASSES)))
        poly = shape_polygon(rng, COCO_CLASSES[cls], size)
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        if (mask & occupied).any() or mask.sum() < 30:
            continue
        occupied |= mask
        shapes.append((cls, poly, mask))
    return shapes


def paint(img, rng, shapes):
    for _, _, mask in shapes:
        bg = img[mask.astype(bool)].mean(axis=0)
        img[mask.astype(bool)] = random_color(rng, bg)
    return img


def save_image(path, image, params=()):
    """``cv2.imwrite`` (the format from the extension of ``path``) through a temporary file."""
    with safe_output(path) as tmp:
        if not cv2.imwrite(tmp, image, list(params)):
            raise OSError(f'could not write {path}')


def save_jpg(path, rgb):
    # cv2 writes BGR; the dataset loaders read BGR and the configs convert (bgr_to_rgb=True).
    save_image(path, rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def make_coco(root, seed=DEFAULT_SEED, size=IMAGE_SIZE, splits=SPLITS):
    """Writes tiny_coco under ``root``; returns {split: number of annotations}."""
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    counts = {}
    for split_index, (split, num_images) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, 0, split_index])
        img_dir = osp.join(root, f'{split}2017')
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for i in range(num_images):
            file_name = f'{i:06d}.jpg'
            shapes = place_shapes(rng, size)
            img = paint(background(rng, size), rng, shapes)
            save_jpg(osp.join(img_dir, file_name), img)
            images.append(dict(id=i + 1, file_name=file_name, height=size, width=size))
            for cls, poly, mask in shapes:
                ys, xs = np.nonzero(mask)
                x0, y0 = int(xs.min()), int(ys.min())
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=i + 1,
                        category_id=cls + 1,
                        segmentation=[poly.astype(float).reshape(-1).tolist()],
                        area=float(mask.sum()),
                        bbox=[x0, y0, int(xs.max()) - x0 + 1,
                              int(ys.max()) - y0 + 1],
                        iscrowd=0))
        coco = dict(
            info=dict(description=f'mmdcls tiny_coco (synthetic, seed {seed})'),
            images=images,
            annotations=annotations,
            categories=[
                dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(COCO_CLASSES)
            ])
        with safe_output(osp.join(root, 'annotations', f'instances_{split}2017.json')) as tmp:
            with open(tmp, 'w') as f:
                json.dump(coco, f)
        counts[split] = len(annotations)
    return counts


def make_ade(root, seed=DEFAULT_SEED, size=IMAGE_SIZE, splits=ADE_SPLITS):
    """Writes tiny_ade under ``root``; returns {split: number of images}."""
    counts = {}
    for split_index, (split, num_images) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, 1, split_index])
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num_images):
            name = f'ADE_{split}_{i:08d}'
            horizon = int(rng.integers(size // 4, 3 * size // 4))
            img = np.empty((size, size, 3), np.uint8)
            sky = (rng.integers(90, 160), rng.integers(150, 210), rng.integers(200, 256))
            ground = (rng.integers(90, 160), rng.integers(60, 110), rng.integers(20, 70))
            img[:horizon] = sky
            img[horizon:] = ground
            img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
            label = np.empty((size, size), np.uint8)
            label[:horizon] = 1 + ADE_CLASSES.index('sky')
            label[horizon:] = 1 + ADE_CLASSES.index('ground')
            # Unlabelled clutter ("other" = 0, ignored in training and evaluation).
            for _ in range(int(rng.integers(0, 3))):
                cx, cy = rng.integers(0, size, 2)
                axes = tuple(int(a) for a in rng.integers(4, 12, 2))
                clutter = np.zeros((size, size), np.uint8)
                cv2.ellipse(clutter, (int(cx), int(cy)), axes, 0, 0, 360, 1, -1)
                img[clutter.astype(bool)] = rng.integers(0, 256, 3)
                label[clutter.astype(bool)] = 0
            shapes = place_shapes(rng, size)
            img = paint(img, rng, shapes)
            for cls, _, mask in shapes:
                label[mask.astype(bool)] = 1 + ADE_CLASSES.index(COCO_CLASSES[cls])
            save_jpg(osp.join(img_dir, name + '.jpg'), img)
            save_image(osp.join(ann_dir, name + '.png'), label)
        counts[split] = num_images
    return counts


def texture(rng, kind, size):
    """A (size, size, 3) uint8 two-colour pattern of ``kind`` (one of :data:`TEXTURE_CLASSES`):
    stripes (horizontal, vertical, or diagonal at +-45 degrees) or a checkerboard, with a random
    period of 6-16 px, phase and pair of colours, plus pixel noise.

    The classes differ in the orientation of their edges only, never in colour or mean
    brightness, so a network must learn oriented filters (and a nonlinearity before pooling)
    to tell them apart; the narrow demo backbone does within a minute of CPU training, which
    the shapes of tiny_coco (told apart by their corners under random rotations) do not allow.
    """
    period = rng.uniform(6, 16)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == 'horizontal':
        wave = np.sin(2 * np.pi * y / period + phase[0])
    elif kind == 'vertical':
        wave = np.sin(2 * np.pi * x / period + phase[0])
    elif kind == 'diagonal':
        sign = rng.choice([-1, 1])
        wave = np.sin(2 * np.pi * (x + sign * y) / (period * np.sqrt(2)) + phase[0])
    elif kind == 'checker':
        wave = (
            np.sin(2 * np.pi * x / period + phase[0]) * np.sin(2 * np.pi * y / period + phase[1]))
    else:
        raise ValueError(f'kind must be one of {TEXTURE_CLASSES}, got {kind!r}')
    c0 = rng.integers(0, 256, size=3)
    c1 = random_color(rng, avoid=c0)
    on = (wave > 0)[..., None]
    img = np.where(on, c1, c0) + rng.normal(0, 10, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_textures(root, seed=DEFAULT_SEED, size=TEXTURE_IMAGE_SIZE, splits=TEXTURE_SPLITS):
    """Writes tiny_textures under ``root``: ``<split>/<class>/<index>.jpg``, the classes in
    turn (so balanced). Returns {split: number of images}."""
    for split_index, (split, num_images) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, 2, split_index])
        for name in TEXTURE_CLASSES:
            os.makedirs(osp.join(root, split, name), exist_ok=True)
        for i in range(num_images):
            kind = TEXTURE_CLASSES[i % len(TEXTURE_CLASSES)]
            save_jpg(osp.join(root, split, kind, f'{i:06d}.jpg'), texture(rng, kind, size))
    return dict(splits)


def datasets_exist(out_dir):
    """Whether both datasets are complete under ``out_dir`` (their last files exist)."""
    needed = [
        osp.join(out_dir, 'tiny_coco', 'annotations', f'instances_{s}2017.json') for s in SPLITS
    ]
    needed += [
        osp.join(out_dir, 'tiny_ade', 'annotations', s, f'ADE_{s}_{n - 1:08d}.png')
        for s, n in ADE_SPLITS.items()
    ]
    # the last image of each split (the classes are written in turn)
    needed += [
        osp.join(out_dir, 'tiny_textures', s, TEXTURE_CLASSES[(n - 1) % len(TEXTURE_CLASSES)],
                 f'{n - 1:06d}.jpg') for s, n in TEXTURE_SPLITS.items()
    ]
    return all(osp.isfile(p) for p in needed)


def make_all(out_dir='data', seed=DEFAULT_SEED, force=False):
    """Generates the three datasets (replacing existing ones if ``force``); returns a summary."""
    if datasets_exist(out_dir) and not force:
        return f'tiny datasets already in {out_dir} (use --force to regenerate)'
    for name in ('tiny_coco', 'tiny_ade', 'tiny_textures'):
        shutil.rmtree(osp.join(out_dir, name), ignore_errors=True)
    coco = make_coco(osp.join(out_dir, 'tiny_coco'), seed)
    ade = make_ade(osp.join(out_dir, 'tiny_ade'), seed)
    textures = make_textures(osp.join(out_dir, 'tiny_textures'), seed)
    return (f'wrote {out_dir}/tiny_coco ({SPLITS} images, {coco} instances), '
            f'{out_dir}/tiny_ade ({ade} images) and {out_dir}/tiny_textures ({textures} '
            f'images), seed {seed}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='data', help='parent folder (default: data)')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED)
    parser.add_argument('--force', action='store_true', help='regenerate if present')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print(make_all(args.out_dir, args.seed, args.force))


if __name__ == '__main__':
    sys.exit(main())
