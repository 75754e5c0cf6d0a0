"""Workers hand freed heap pages back to the OS after each chunk (see workers/memory.py)."""

from __future__ import annotations

import platform

import pytest

from workers.memory import release_free_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_release_free_memory_trims_the_glibc_heap():
    import psutil

    # Start from a trimmed heap: in a long test session freed-but-resident pages would otherwise
    # absorb the allocations below without any change in RSS.
    release_free_memory()
    rss = psutil.Process().memory_info().rss
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # ~256 MB in small-ish heap blocks
    assert psutil.Process().memory_info().rss > rss + 200 * 2**20
    del blocks[:-1]  # the last block stays alive on top of the heap, so only a trim frees the pages below it
    assert release_free_memory() is True
    assert psutil.Process().memory_info().rss < rss + 100 * 2**20, "freed pages must go back to the OS"
