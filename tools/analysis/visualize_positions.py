"""Plot the learned DCLS positions and constructed kernels of a checkpoint, one row per stage.

    python tools/analysis/visualize_positions.py CHECKPOINT [--out positions.png]
        [--config CONFIG] [--dilated-kernel-size 17] [--version v0] [--channels 4]
        [--prefix backbone.]

Each row (one stage of a ConvNeXt-DCLS, or more generally one distinct ``...dwconv.P`` tensor)
shows a scatter of the positions of the first ``--channels`` channels in the dilated kernel
(marker area proportional to |weight|, one colour per channel) and the constructed dense
kernels of those channels. With shared positions (the release) a stage has one ``P`` that
all its blocks use; the kernels shown are those of the stage's first block.

The dilated kernel size and version come from ``--dilated-kernel-size`` / ``--version``, else
from ``--config``, else from the config mmengine stored in the checkpoint's ``meta``, else the
release's defaults (17, ``'v0'``).

The PNG is written through a temporary file renamed onto ``--out``, never onto CHECKPOINT or
``--config``. Exit status: 0 after writing it, 2 when the inputs cannot be used (a missing
file, a checkpoint that is not a readable torch file, ``--out`` the same file as an input: one
line naming them), 1 on any other error.
"""
import argparse
import re
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use('Agg')  # headless: always write a file, never open a window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import mmdcls  # noqa: F401,E402  registers mmdcls's types before any config is read
from mmdcls.models.backbones.convnext_dcls_args import DEFAULT_DILATED_KERNEL_SIZE  # noqa: E402
from mmdcls.models.utils import DEFAULT_VERSION, load_checkpoint_file  # noqa: E402
from mmdcls.ops import construct_kernel, position_axes  # noqa: E402
from mmdcls.utils.safe_output import check_outputs, safe_output  # noqa: E402
from mmdcls.utils.tool_errors import INPUT_ERRORS, report_tool_error  # noqa: E402

_P_KEY = re.compile(r'^(?P<layer>(?P<stage>.*?stages\.(?P<i>\d+))\.(?P<j>\d+)\.dwconv)\.P$')
#: the backbone's defaults, for checkpoints whose config does not say
DEFAULTS = dict(dilated_kernel_size=DEFAULT_DILATED_KERNEL_SIZE, version=DEFAULT_VERSION)


def load_state_dict(path):
    """The parameter dict of an mmengine (``state_dict``) or release (``model``) checkpoint,
    and the checkpoint's ``meta`` (or {})."""
    ckpt = load_checkpoint_file(path, map_location='cpu')  # weights-only on every torch
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path}: expected a dict checkpoint, got {type(ckpt).__name__}')
    for key in ('state_dict', 'model'):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key], ckpt.get('meta') or {}
    return ckpt, {}


def backbone_settings(meta, config=None):
    """``dilated_kernel_size`` and ``version`` of the backbone in ``config`` (a path) or in the
    config text stored in ``meta['cfg']``; {} if neither has them."""
    from mmengine.config import Config
    cfg = None
    if config is not None:
        cfg = Config.fromfile(config)
    elif isinstance(meta.get('cfg'), str):
        try:
            cfg = Config.fromstring(meta['cfg'], '.py')
        except Exception:  # a stored config that no longer parses: fall back to defaults
            cfg = None
    backbone = (cfg.get('model', {}) or {}).get('backbone', {}) if cfg is not None else {}
    return {k: backbone[k] for k in DEFAULTS if k in backbone}


def collect_layers(state_dict, prefix=''):
    """One entry per distinct position tensor: OrderedDict ``stage name -> dict(P, weight,
    SIG, layer, shared)``; ``shared`` says whether every block of the stage has the same P."""
    stages = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        m = _P_KEY.match(key)
        if m is None:
            continue
        stage = m.group('stage')
        entry = stages.setdefault(stage, dict(layers=[]))
        entry['layers'].append((int(m.group('j')), m.group('layer'), value))
    if not stages:
        raise ValueError(
            f'no "<...>stages.<i>.<j>.dwconv.P" key{" under " + prefix if prefix else ""}'
            ' in the checkpoint: not a DCLS (ConvNeXt-DCLS) model?')
    out = OrderedDict()
    for stage, entry in stages.items():
        layers = sorted(entry['layers'], key=lambda t: t[0])
        _, layer, P = layers[0]
        out[stage] = dict(
            layer=layer,
            P=P.float(),
            weight=state_dict[layer + '.weight'].float(),
            SIG=state_dict.get(layer + '.SIG'),
            shared=all(torch.equal(P, other) for _, _, other in layers[1:]),
            blocks=len(layers))
    return out


def plot(stages, out, dilated_kernel_size, version, channels=4):
    """Writes the figure to ``out``; returns ``out``."""
    size = (dilated_kernel_size, ) * 2 if isinstance(dilated_kernel_size, int) \
        else tuple(dilated_kernel_size)
    axes_of = position_axes(version, 2)  # kernel axis indexed by each component of P
    rows, cols = len(stages), 1 + channels
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    colors = plt.cm.tab10.colors
    for r, (stage, s) in enumerate(stages.items()):
        P, weight = s['P'], s['weight']
        if P.dim() != 4 or P.shape[0] != 2:
            raise ValueError(f'{stage}: expected a 2-D DCLS P of shape (2, out, in/groups, K), '
                             f'got {tuple(P.shape)}')
        n = min(channels, P.shape[1])
        sig = s['SIG'].float() if s['SIG'] is not None else None
        kernels = construct_kernel(weight[:n], P[:, :n], None if sig is None else sig[:, :n], size,
                                   version).detach()
        ax = axes[r][0]
        for c in range(n):
            coord = [None, None]
            for comp, axis in enumerate(axes_of):
                coord[axis] = P[comp, c, 0] + size[axis] // 2  # 0 = centre -> grid index
            w = weight[c, 0].abs()
            ax.scatter(
                coord[1].numpy(),
                coord[0].numpy(),
                s=10 + 200 * (w / (w.max() + 1e-12)),
                color=colors[c % len(colors)],
                alpha=0.7,
                label=f'ch {c}')
        ax.set_xlim(-0.5, size[1] - 0.5)
        ax.set_ylim(size[0] - 0.5, -0.5)
        ax.set_aspect('equal')
        ax.grid(True, lw=0.3)
        shared = 'shared' if s['shared'] and s['blocks'] > 1 else f'{s["blocks"]} block(s)'
        ax.set_title(f'{stage} P ({shared})', fontsize=8)
        if r == 0:
            ax.legend(fontsize=6, loc='upper right')
        for c in range(channels):
            ax = axes[r][1 + c]
            ax.axis('off')
            if c >= n:
                continue
            k = kernels[c, 0].numpy()
            vmax = abs(k).max() or 1.0
            ax.imshow(k, cmap='RdBu_r', vmin=-vmax, vmax=vmax)
            ax.set_title(f'{s["layer"].split(".", 1)[-1]} ch {c}', fontsize=7)
    fig.suptitle(f'DCLS positions and kernels ({version}, dilated {size[0]}x{size[1]})')
    fig.tight_layout()
    with safe_output(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--out', default='positions.png', help='PNG to write')
    parser.add_argument('--config', help='config of the checkpoint (dilated size, version)')
    parser.add_argument('--dilated-kernel-size', type=int)
    parser.add_argument('--version', choices=('v0', 'v1', 'gauss', 'max'))
    parser.add_argument('--channels', type=int, default=4, help='channels shown per stage')
    parser.add_argument('--prefix', default='', help='only keys under this prefix')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Writes the figure; returns the exit status."""
    args = parse_args(argv)
    try:
        check_outputs({'--out': args.out}, {'CHECKPOINT': args.checkpoint, '--config': args.config})
        state_dict, meta = load_state_dict(args.checkpoint)
        config_settings = backbone_settings(meta, args.config)
    except INPUT_ERRORS as err:
        return report_tool_error('tools/analysis/visualize_positions.py', err)
    settings = dict(DEFAULTS)
    settings.update(config_settings)
    if args.dilated_kernel_size is not None:
        settings['dilated_kernel_size'] = args.dilated_kernel_size
    if args.version is not None:
        settings['version'] = args.version
    stages = collect_layers(state_dict, args.prefix)
    out = plot(stages, args.out, settings['dilated_kernel_size'], settings['version'],
               args.channels)
    print(f'wrote {out} ({len(stages)} stage(s), dilated_kernel_size '
          f'{settings["dilated_kernel_size"]}, version {settings["version"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
