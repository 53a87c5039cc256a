"""Inference speed (images / s) of an mmdet / mmseg model on its test data.

    python tools/analysis/benchmark_fps.py CONFIG [CHECKPOINT] [--max-iter 200]
        [--num-warmup 5] [--log-interval 50] [--threads N] [--cfg-options k=v ...]

Runs ``model.test_step`` on batches of the config's ``test_dataloader`` (batch size 1, data
loading excluded from the timing) after ``--num-warmup`` untimed iterations, on CUDA if
available, else CPU. Without CHECKPOINT the model keeps its initial weights: the speed is the
same, the predictions are not meaningful.
"""
import argparse
import sys
import time

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from mmdcls.utils.config_checks import check_config  # noqa: E402
from mmdcls.utils.tool_setup import select_toolkit  # noqa: E402

import mmdcls  # noqa: F401  isort:skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark inference speed (img/s)')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--max-iter', type=int, default=200, help='timed images')
    parser.add_argument('--num-warmup', type=int, default=5)
    parser.add_argument('--log-interval', type=int, default=50)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads on CPU')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def benchmark(cfg, checkpoint=None, max_iter=200, num_warmup=5, log_interval=50):
    """Returns ``dict(fps=..., images=..., device=...)``."""
    from mmengine.registry import MODELS
    from mmengine.runner import Runner, load_checkpoint
    if max_iter < 1 or num_warmup < 0:
        raise ValueError(f'max_iter must be >= 1 and num_warmup >= 0, got {max_iter}, '
                         f'{num_warmup}')
    cfg.model.get('backbone', {}).pop('init_cfg', None)  # weights come from CHECKPOINT
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.batch_size = 1
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg)
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = model.to(device).eval()
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    timed, elapsed, i = 0, 0.0, 0
    with torch.no_grad():
        while timed < max_iter:
            for data in loader:
                sync()
                start = time.perf_counter()
                model.test_step(data)
                sync()
                if i >= num_warmup:
                    elapsed += time.perf_counter() - start
                    timed += 1
                    if log_interval and timed % log_interval == 0:
                        print(
                            f'done image [{timed:<4}/{max_iter}], fps: {timed / elapsed:.2f} '
                            'img/s',
                            flush=True)
                    if timed >= max_iter:
                        break
                i += 1
    return dict(fps=timed / elapsed, images=timed, device=device)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    select_toolkit(cfg)
    check_config(cfg, phases=('test', ))
    result = benchmark(cfg, args.checkpoint, args.max_iter, args.num_warmup, args.log_interval)
    print(f'Overall fps: {result["fps"]:.2f} img/s ({result["images"]} images, '
          f'{result["device"]}, {torch.get_num_threads()} CPU threads)')
    return result


if __name__ == '__main__':
    main()
    sys.exit(0)
