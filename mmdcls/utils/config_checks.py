"""Checks ``tools/train.py`` / ``tools/test.py`` run on a config before building anything.

The tools check the config they will run: the file with ``--cfg-options`` merged in
(:func:`mmdcls.utils.tool_setup.load_tool_config`), values included.

Only checks: loading the config, picking its toolkit and the distributed setup are
:mod:`mmdcls.utils.tool_setup`.

Each failure raises a ``ValueError`` (``FileNotFoundError`` for a missing path) naming the
config key and the file, so that a typo in a config or a dataset in the wrong place stops the
run in seconds instead of after the model is built or, worse, silently trains on nothing.

What is checked:

* ``default_scope`` is one of :data:`TOOLKITS` (:func:`check_default_scope`);
* an mmdcls backbone (``mmdcls.ConvNeXtDCLS`` and the other ConvNeXt-DCLS classes) passes the
  class's own argument checks (``check_config``: arch, version, kernel settings, out_indices,
  frozen_stages, init_cfg, unknown keys), the values it passes on to its DCLS layers pass the
  layer's checks (``kernel_count``, ``dilated_kernel_size``) and its ``init_cfg`` checkpoint
  file exists (its tensor shapes are checked by the backbone when it loads the file, before
  the first iteration);
* every dataset a phase uses (nested ``dataset`` / ``datasets`` wrappers included): its
  ``data_root``, ``ann_file`` and ``data_prefix`` folders exist;
* COCO-style annotation files parse and have the COCO structure; the config's
  ``metainfo.classes`` are categories of the file; the heads' ``num_classes`` (mmdet, mmseg,
  mmpretrain) match the number of classes;
* segmentation datasets in the ADE20K layout have an annotation for every image.
"""
import json
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

__all__ = [
    'TOOLKITS', 'check_default_scope', 'check_config', 'check_coco_annotation_file',
    'ConfigCheckError'
]

#: supported values of a config's ``default_scope``: the toolkit the tools run it in
TOOLKITS = ('mmdet', 'mmseg', 'mmpretrain')
#: COCO annotation files above this size are only checked for existence and their first byte
#: (parsing COCO's 450 MB train json twice would add a minute; the toolkit parses it anyway).
MAX_PARSED_ANNOTATION_BYTES = 64 * 2**20
_IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class ConfigCheckError(ValueError):
    """A config (or the data it names) that cannot train / test as written."""


def check_default_scope(cfg) -> str:
    """The config's ``default_scope``, which selects the toolkit; one of :data:`TOOLKITS`.

    Raises:
        ConfigCheckError: another value, or none.
    """
    scope = cfg.get('default_scope')
    if scope not in TOOLKITS:
        raise ConfigCheckError(
            f'{cfg.filename}: default_scope must be one of {TOOLKITS} (it selects the '
            f'toolkit), got {scope!r}')
    return scope


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def _iter_datasets(dataset_cfg, key: str) -> Iterator[Tuple[str, dict]]:
    """Leaf dataset configs inside wrappers (``dataset=...``, ``datasets=[...]``)."""
    if dataset_cfg is None:
        return
    if 'datasets' in dataset_cfg:
        for i, sub in enumerate(dataset_cfg['datasets']):
            yield from _iter_datasets(sub, f'{key}.datasets[{i}]')
    elif 'dataset' in dataset_cfg:
        yield from _iter_datasets(dataset_cfg['dataset'], f'{key}.dataset')
    else:
        yield key, dataset_cfg


def _join(root: Optional[str], path: str) -> str:
    if root is None or osp.isabs(path) or _is_remote(path):
        return path
    return osp.join(root, path)


def _require_path(path: str, key: str, what: str, cfg_file: str, isdir: bool) -> None:
    if _is_remote(path):
        return
    exists = osp.isdir(path) if isdir else osp.isfile(path)
    if not exists:
        raise FileNotFoundError(
            f'{cfg_file}: {key} = {path!r}: {what} not found (from {os.getcwd()}). Put the '
            f'dataset there or override the key with --cfg-options')


def check_coco_annotation_file(path: str, classes: Optional[List[str]] = None) -> None:
    """Checks a COCO instances json: it parses, has ``images`` / ``annotations`` /
    ``categories`` lists with the keys mmdet reads, and contains ``classes`` (if given).

    Raises:
        ConfigCheckError: naming the file and the offending key.
    """
    size = osp.getsize(path)
    if size > MAX_PARSED_ANNOTATION_BYTES:
        with open(path, 'rb') as f:
            head = f.read(64).lstrip()
        if not head.startswith(b'{'):
            raise ConfigCheckError(f'{path}: not a COCO json file (does not start with "{{")')
        return
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigCheckError(f'{path}: malformed annotation file, not valid JSON: {e}') from e
    if not isinstance(coco, dict):
        raise ConfigCheckError(f'{path}: a COCO annotation file is a JSON object, got '
                               f'{type(coco).__name__}')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise ConfigCheckError(f'{path}: key {key!r} must be a list, got '
                                   f'{type(coco.get(key)).__name__}')
    required = {
        'images': ('id', 'file_name', 'height', 'width'),
        'annotations': ('id', 'image_id', 'category_id', 'bbox'),
        'categories': ('id', 'name')
    }
    for key, fields in required.items():
        for i, item in enumerate(coco[key]):
            missing = [f for f in fields if not isinstance(item, dict) or f not in item]
            if missing:
                raise ConfigCheckError(f'{path}: {key}[{i}] lacks {missing}')
    image_ids = {img['id'] for img in coco['images']}
    cat_ids = {cat['id'] for cat in coco['categories']}
    for i, ann in enumerate(coco['annotations']):
        bbox = ann['bbox']
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) for v in bbox)):
            raise ConfigCheckError(f'{path}: annotations[{i}].bbox must be [x, y, w, h], '
                                   f'got {bbox!r}')
        if ann['image_id'] not in image_ids:
            raise ConfigCheckError(f'{path}: annotations[{i}].image_id {ann["image_id"]!r} is '
                                   'not in images')
        if ann['category_id'] not in cat_ids:
            raise ConfigCheckError(f'{path}: annotations[{i}].category_id '
                                   f'{ann["category_id"]!r} is not in categories')
        seg = ann.get('segmentation')
        if seg is not None and not isinstance(seg, (list, dict)):
            raise ConfigCheckError(f'{path}: annotations[{i}].segmentation must be polygons '
                                   f'(list) or RLE (dict), got {type(seg).__name__}')
    if classes is not None:
        names = [cat['name'] for cat in coco['categories']]
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ConfigCheckError(f'{path}: metainfo.classes {unknown} are not categories of '
                                   f'the file (it has {names})')


def _dataset_classes(ds_cfg) -> Optional[List[str]]:
    metainfo = ds_cfg.get('metainfo') or {}
    classes = metainfo.get('classes')
    return list(classes) if classes is not None else None


def _check_dataset(ds_cfg, key: str, cfg_file: str) -> None:
    root = ds_cfg.get('data_root')
    if root is not None:
        _require_path(root, f'{key}.data_root', 'dataset folder', cfg_file, isdir=True)
    ann_file = ds_cfg.get('ann_file')
    if ann_file:
        ann_path = _join(root, ann_file)
        _require_path(ann_path, f'{key}.ann_file', 'annotation file', cfg_file, isdir=False)
        if not _is_remote(ann_path) and ann_path.endswith('.json'):
            check_coco_annotation_file(ann_path, _dataset_classes(ds_cfg))
    prefix = ds_cfg.get('data_prefix') or {}
    dirs = {}
    # mmpretrain's datasets also take the image folder as a plain string
    for name, sub in (prefix.items() if isinstance(prefix, dict) else [(None, prefix)]):
        if not isinstance(sub, str) or not sub:
            continue
        path = _join(root, sub)
        where = f'{key}.data_prefix' + (f'.{name}' if name is not None else '')
        _require_path(path, where, 'folder', cfg_file, isdir=True)
        dirs[name or 'img_path'] = path
    # Segmentation layout (ADE20K and the like): an annotation map for every image.
    if 'img_path' in dirs and 'seg_map_path' in dirs and not ann_file:
        img_suffix = ds_cfg.get('img_suffix', '.jpg')
        seg_suffix = ds_cfg.get('seg_map_suffix', '.png')
        images = {
            f[:-len(img_suffix)]
            for f in os.listdir(dirs['img_path']) if f.endswith(img_suffix)
        }
        if not images:
            raise FileNotFoundError(f'{cfg_file}: {key}.data_prefix.img_path '
                                    f'{dirs["img_path"]!r} has no *{img_suffix} image')
        maps = {
            f[:-len(seg_suffix)]
            for f in os.listdir(dirs['seg_map_path']) if f.endswith(seg_suffix)
        }
        missing = sorted(images - maps)
        if missing:
            raise ConfigCheckError(
                f'{cfg_file}: {len(missing)} image(s) of {dirs["img_path"]!r} have no '
                f'{seg_suffix} annotation in {key}.data_prefix.seg_map_path '
                f'{dirs["seg_map_path"]!r}, e.g. {missing[0]}{seg_suffix}')


def _check_num_classes(cfg, classes: List[str], where: str) -> None:
    model = cfg.get('model', {})
    heads = []
    roi = model.get('roi_head') or {}
    for name in ('bbox_head', 'mask_head'):
        head = roi.get(name)
        for i, h in enumerate(head if isinstance(head, list) else [head]):
            if isinstance(h, dict) and 'num_classes' in h:
                heads.append(
                    (f'model.roi_head.{name}' + (f'[{i}]' if isinstance(head, list) else ''),
                     h['num_classes']))
    # mmdet's single-stage bbox_head, mmseg's decode / auxiliary heads, mmpretrain's head (and
    # its data_preprocessor, which one-hot encodes for batch augments)
    for name in ('bbox_head', 'decode_head', 'auxiliary_head', 'head', 'data_preprocessor'):
        head = model.get(name)
        for i, h in enumerate(head if isinstance(head, list) else [head]):
            if isinstance(h, dict) and 'num_classes' in h:
                heads.append((f'model.{name}' + (f'[{i}]' if isinstance(head, list) else ''),
                              h['num_classes']))
    for key, num in heads:
        if num != len(classes):
            raise ConfigCheckError(f'{cfg.filename}: {key}.num_classes = {num} but {where} has '
                                   f'{len(classes)} classes {classes}')


def _backbone_class(type_name):
    """The mmdcls ConvNeXt-DCLS class a config's backbone ``type`` names, or None (another
    toolkit's backbone: not checked here)."""
    from mmdcls.models.backbones import ConvNeXtDCLSTrunk
    from mmdcls.registry import MODELS
    if isinstance(type_name, str):
        name = type_name[len('mmdcls.'):] if type_name.startswith('mmdcls.') else type_name
        cls = MODELS.module_dict.get(name)  # mmdcls's own registrations only
    else:
        cls = type_name
    return cls if isinstance(cls, type) and issubclass(cls, ConvNeXtDCLSTrunk) else None


def _check_backbone(cfg) -> None:
    backbone = dict((cfg.get('model') or {}).get('backbone') or {})
    cls = _backbone_class(backbone.pop('type', None))
    if cls is None:
        return
    try:
        cls.check_config(backbone)  # the class's own argument checks, nothing built
    except (TypeError, ValueError) as err:
        raise ConfigCheckError(f'{cfg.filename}: model.backbone ({cls.__name__}): {err}') from err
    init_cfg = backbone.get('init_cfg') or {}
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        ckpt = init_cfg.get('checkpoint')
        if ckpt and not _is_remote(ckpt) and not osp.isfile(ckpt):
            raise FileNotFoundError(
                f'{cfg.filename}: model.backbone.init_cfg.checkpoint = {ckpt!r} not found (from '
                f'{os.getcwd()}); download the ImageNet checkpoint (README.md, Model zoo) or train '
                "from scratch with --cfg-options model.backbone.init_cfg=None")


def check_config(cfg, phases=('train', 'val')) -> None:
    """Runs the checks of this module on ``cfg`` for the given phases (``'train'``, ``'val'``,
    ``'test'``: which dataloaders are checked).

    Raises:
        ConfigCheckError / FileNotFoundError: naming the config key and the file.
    """
    _check_backbone(cfg)
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if not loader or (phase == 'val' and not cfg.get('val_cfg')):
            continue
        for key, ds_cfg in _iter_datasets(loader.get('dataset'), f'{phase}_dataloader.dataset'):
            _check_dataset(ds_cfg, key, cfg.filename)
            classes = _dataset_classes(ds_cfg)
            if classes is not None:
                _check_num_classes(cfg, classes, f'{key}.metainfo')
