"""Optimizer-wrapper constructors (registered in ``mmdcls.registry.OPTIM_WRAPPER_CONSTRUCTORS``)."""
from .layer_decay_optim_constructor import DCLSLearningRateDecayOptimizerConstructor

__all__ = ['DCLSLearningRateDecayOptimizerConstructor']
