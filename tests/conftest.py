"""Fixtures shared by the whole suite.

The test machines have 2 cores shared by several jobs: torch never uses more than 2 threads
here, and every test starts from the same seeds so that failures reproduce.
"""
import random

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed python, numpy and torch before each test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
