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

Each output is written through a temporary file renamed onto it, so an interrupted run leaves
the previous file (or none); no output may be the same file as CONFIG, CHECKPOINT or another
output.

Exit status: 0 after saving, 2 when the inputs cannot be used (a missing file, a checkpoint
that is not a readable torch file, an output that is the same file as an input: one line
naming them), 1 when the folded outputs differ or on any other error.
"""
import argparse
import sys

import torch

from mmdcls.utils.safe_output import check_outputs, safe_output
from mmdcls.utils.tool_errors import INPUT_ERRORS, report_tool_error


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


def read_weights(checkpoint: str) -> dict:
    """The state dict of the file ``checkpoint`` (``state_dict`` / ``model`` entry, or a bare
    one), through mmdcls's weights-only loader: an empty, truncated or foreign file raises
    :class:`~mmdcls.models.utils.UnreadableCheckpointError` naming it."""
    from mmdcls.models.utils import extract_state_dict, load_checkpoint_file
    return extract_state_dict(load_checkpoint_file(checkpoint), checkpoint)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        outputs = {'OUT': args.out, '--save-model': args.save_model, '--onnx': args.onnx}
        check_outputs(outputs, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint})
        state_dict = read_weights(args.checkpoint)
        model = build_model(args.config)
    except INPUT_ERRORS as err:
        return report_tool_error('tools/deploy/fold.py', err)
    from mmengine.runner import load_state_dict

    from mmdcls.deploy import fold_dcls, is_dcls_layer

    # strict: a RuntimeError lists the keys of the checkpoint and the model that do not match
    load_state_dict(model, state_dict, strict=True)

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
    with safe_output(args.out) as tmp:
        torch.save(
            {
                'state_dict': folded.state_dict(),
                'meta': dict(
                    config=args.config, checkpoint=args.checkpoint, folded_dcls_layers=count)
            }, tmp)
    print(f'saved folded checkpoint to {args.out}')
    if args.save_model:
        with safe_output(args.save_model) as tmp:
            torch.save(folded, tmp)
        print(f'saved folded model to {args.save_model}')
    if args.onnx:
        with safe_output(args.onnx) as tmp:
            torch.onnx.export(
                TensorMode(folded), (x, ), tmp, opset_version=args.opset, dynamo=False)
        print(f'exported ONNX to {args.onnx}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
