"""Keeps DCLS positions inside their dilated kernels during training."""
import logging
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmdcls.registry import HOOKS


def clampable_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of every submodule of ``model`` with a ``clamp_parameters()`` method
    (DDP / mmengine wrappers are unwrapped first)."""
    if is_model_wrapper(model):
        model = model.module
    return [(name, m) for name, m in model.named_modules()
            if callable(getattr(m, 'clamp_parameters', None))]


@HOOKS.register_module()
class DCLSClampHook(Hook):
    """Calls ``clamp_parameters()`` on every module that has one after each optimizer step.

    ``custom_hooks=[dict(type='mmdcls.DCLSClampHook')]``. The release clamps the positions
    after every iteration; with gradient accumulation (``optim_wrapper.accumulative_counts``)
    the parameters only change on the iterations where the optimizer steps, so the hook skips
    the iterations where the wrapper's inner count advanced by one backward and
    ``should_update()`` is false. Clamping is in place under ``no_grad``, so the positions keep
    their dtype (fp32 under AMP: autocast casts copies, never the parameters), and every DDP
    rank clamps the same values. Nested modules that both have the method (a backbone and its
    DCLS layers) are all called: clamping twice is the same as once.

    The hook runs at ``ABOVE_NORMAL`` priority, before ``EMAHook`` and the checkpoint hook
    read the parameters of the iteration.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self._modules: List[Tuple[str, nn.Module]] = []
        self._counts: Dict[str, int] = {}

    def before_train(self, runner) -> None:
        self._modules = clampable_modules(runner.model)
        if self._modules:
            names = [name or type(m).__name__ for name, m in self._modules]
            shown = ', '.join(
                names[:4]) + (f', ... ({len(names)} in all)' if len(names) > 4 else '')
            print_log(f'DCLSClampHook: clamps {shown} after each optimizer step', logger='current')
        else:
            print_log(
                'DCLSClampHook: the model has no module with clamp_parameters() (no DCLS '
                'layer?); the hook does nothing',
                logger='current',
                level=logging.WARNING)

    @staticmethod
    def _wrappers(optim_wrapper) -> Dict[str, object]:
        if isinstance(optim_wrapper, OptimWrapperDict):
            return dict(optim_wrapper.items())
        return {'': optim_wrapper}

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._counts = {k: w.inner_count for k, w in self._wrappers(runner.optim_wrapper).items()}

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if self.stepped(runner.optim_wrapper):
            self.clamp()

    def stepped(self, optim_wrapper) -> bool:
        """Whether an optimizer may have stepped during this iteration.

        False only when it certainly did not: the inner count advanced by exactly one backward
        and ``should_update()`` is false (an accumulation iteration). Any other pattern (a
        train_step that bypasses the wrapper, several backwards per iteration) clamps, which is
        always safe: clamping in-range positions changes nothing.
        """
        for key, wrapper in self._wrappers(optim_wrapper).items():
            before = self._counts.get(key)
            if before is None or wrapper.inner_count != before + 1 or wrapper.should_update():
                return True
        return False

    def clamp(self) -> None:
        """Clamps every collected module now."""
        with torch.no_grad():  # in place on leaf parameters, never part of the graph
            for _, module in self._modules:
                module.clamp_parameters()
