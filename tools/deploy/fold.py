"""Fold the DCLS layers of a trained model into standard convolutions.

Builds the model of an mmdet / mmseg / mmdcls config, loads a checkpoint (strict: every key
must match), replaces each DCLS layer by an ``nn.Conv2d`` holding its constructed kernel
(``mmdcls.deploy.fold_dcls``), checks on a random input that outputs are unchanged, and saves
with ``torch.save``:

* ``OUT``: ``{'state_dict': folded state dict, 'meta': {...}}``; the positions (``P``, ``SIG``)
  are gone, each ``dwconv.weight`` is the dense (C, 1, k, k) kernel. Load it into the whole
  pickled model (``--save-model``) or into a config whose DCLS layers are replaced by convs of
  the dilated size (e.g. ``backbone.dwconv_cfg=dict(type='Conv2d', kernel_size=17)``).
* ``--save-model PATH``: the folded ``nn.Module`` itself (``torch.load(PATH,
  weights_only=False)``).
* ``--onnx PATH``: ``torch.onnx.export`` of the folded model's tensor-mode forward on a
  ``--shape`` input (needs the ``onnx`` package).

    python tools/deploy/fold.py CONFIG CHECKPOINT OUT [--save-model M.pt] [--onnx M.onnx]
        [--shape 1 3 224 224]
"""
import argparse
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='mmengine config of the model')
    parser.add_argument('checkpoint', help='checkpoint with the trained DCLS model')
    parser.add_argument('out', help='where to save the folded checkpoint')
    parser.add_argument('--save-model', help='also save the folded nn.Module (pickled)')
    parser.add_argument('--onnx', help='also export the folded model to this ONNX file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1, 3, 224, 224],
        help='input shape for the output check and the ONNX export')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset')
    return parser.parse_args(argv)


def build_model(config: str):
    """The config's model (``cfg.model``) built in its default scope, in eval mode."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    import mmdcls  # noqa: F401  registers the DCLS layers even without custom_imports
    init_default_scope(cfg.get('default_scope', 'mmdcls'))
    model_cfg = cfg.model.copy()
    # The checkpoint provides every weight: no pretrained download during the build.
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.pop('init_cfg', None)
    return MODELS.build(model_cfg).eval()


def tensor_forward(model):
    """A callable ``x -> tensors`` for the check and export: ``forward(x, mode='tensor')`` for
    OpenMMLab models (BaseModel), else ``forward(x)``."""
    from mmengine.model import BaseModel
    if isinstance(model, BaseModel):
        return lambda x: model(x, mode='tensor')
    return model


def flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in flatten(o)]


class TensorMode(torch.nn.Module):
    """Wraps a model so that ``forward(x)`` is its tensor-mode forward (for ONNX export)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._fn = tensor_forward(model)

    def forward(self, x):
        return tuple(flatten(self._fn(x)))


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.runner import load_checkpoint

    from mmdcls.deploy import fold_dcls, is_dcls_layer

    model = build_model(args.config)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    count = sum(is_dcls_layer(m) for m in model.modules())
    if count == 0:
        raise ValueError(f'{args.config}: the model has no DCLS layer to fold')
    folded = fold_dcls(model).eval()
    x = torch.randn(*args.shape)
    with torch.no_grad():
        ref, out = flatten(tensor_forward(model)(x)), flatten(tensor_forward(folded)(x))
    worst = max(
        ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() for a, b in zip(out, ref))
    print(f'folded {count} DCLS layers; max relative output difference {worst:.2e}')
    if worst > 1e-4:
        print('error: folded outputs differ from the DCLS model', file=sys.stderr)
        return 1
    torch.save(
        {
            'state_dict': folded.state_dict(),
            'meta': dict(config=args.config, checkpoint=args.checkpoint, folded_dcls_layers=count)
        }, args.out)
    print(f'saved folded checkpoint to {args.out}')
    if args.save_model:
        torch.save(folded, args.save_model)
        print(f'saved folded model to {args.save_model}')
    if args.onnx:
        torch.onnx.export(
            TensorMode(folded), (x, ), args.onnx, opset_version=args.opset, dynamo=False)
        print(f'exported ONNX to {args.onnx}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
