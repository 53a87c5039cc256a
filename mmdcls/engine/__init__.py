"""mmdcls training pieces: the layer-decay optimizer constructor, the position clamp hook and
the optimizer wrappers."""
from .hooks import DCLSClampHook
from .optim_wrappers import CPUAutocastOptimWrapper
from .optimizers import DCLSLearningRateDecayOptimizerConstructor

__all__ = ['CPUAutocastOptimWrapper', 'DCLSClampHook', 'DCLSLearningRateDecayOptimizerConstructor']
