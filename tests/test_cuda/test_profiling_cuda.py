"""mmdcls.utils.profiling on CUDA: the peak-memory helper of the GPU benchmark."""
import torch
from cuda_helpers import DEVICE, requires_cuda

from mmdcls.utils.profiling import peak_cuda_bytes

pytestmark = requires_cuda


def test_peak_cuda_bytes_counts_what_the_call_allocates_beyond_what_was_there():
    held = torch.empty(2**20, dtype=torch.uint8, device=DEVICE)  # before the call: not counted
    size = 3 * 2**20

    def fn():
        first = torch.empty(size, dtype=torch.uint8, device=DEVICE)
        del first  # freed: the second reuses the memory, the peak stays one tensor
        return torch.empty(size, dtype=torch.uint8, device=DEVICE)

    assert peak_cuda_bytes(fn) == size
    assert peak_cuda_bytes(lambda: None) == 0
    del held
