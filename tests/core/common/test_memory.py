import subprocess
import sys

import pytest

from napari_unet_seg.core.common.memory import _malloc_trim, return_freed_memory

CHILD = r"""
import numpy as np
from napari_unet_seg.core.common.memory import return_freed_memory

def resident():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

# 100 kB arrays live on the heap (below glibc's mmap threshold); freeing every other one leaves holes
# that the heap's top cannot give back by itself
arrays = [np.ones(12_500) for _ in range(4000)]
del arrays[::2]
before = resident()
assert return_freed_memory()
print(before - resident())
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="glibc's malloc_trim only")
def test_freed_heap_memory_goes_back_to_the_system():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    assert int(result.stdout) > 100 * 2**20  # of the ~200 MB freed


def test_it_is_a_quiet_no_op_where_the_allocator_cannot():
    assert return_freed_memory() is (_malloc_trim() is not None)
