"""Imported by the distributed test's training processes (``custom_imports``): a hook that
saves every rank's parameters after training, so the test can compare the ranks."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankParamsHook(Hook):
    """Writes ``<work_dir>/params_rank<r>.pth`` (name -> tensor) after the last iteration."""

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = {n: p.detach().clone() for n, p in model.named_parameters()}
        # shared positions: the same Parameter under one name (named_parameters dedups);
        # keep the block-level view too, to check that sharing survived DDP
        params['__shared_P_ids__'] = torch.tensor(
            [len({id(b.dwconv.P)
                  for b in stage}) for stage in model.backbone.stages])
        torch.save(params, osp.join(runner.work_dir, f'params_rank{get_rank()}.pth'))
