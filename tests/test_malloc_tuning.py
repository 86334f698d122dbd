"""glibc malloc tuning for serving: freed tensor memory is reused, not faulted in again."""
import platform
import subprocess
import sys

import pytest

# In a worker thread (like the model thread), a forward-pass-like pattern: several tensors of
# 1-20 MB alive at once, then all freed; count the page faults of 5 rounds once warmed up (the
# heap takes some rounds to reach its steady size). glibc's defaults fault ~11,000 pages here.
PROBE = """
import resource, sys, threading
from connector.malloc_tuning import tune_glibc_malloc
print(tune_glibc_malloc() if sys.argv[1] == "tuned" else False)
import torch
torch.set_num_threads(1)
SIZES_MB = (1, 3, 8, 20, 16, 5, 12)

def rounds(out):
    def once():
        live = [torch.ones(mb * 262144) for mb in SIZES_MB]
        del live
    for _ in range(20):
        once()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        once()
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

out = []
t = threading.Thread(target=rounds, args=(out,))
t.start()
t.join()
print(out[0], 5 * sum(SIZES_MB) * 256)  # faults, pages written
"""


def probe(mode: str) -> tuple[str, int, int]:
    lines = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    faults, pages = map(int, lines[1].split())
    return lines[0], faults, pages


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the tuning is for glibc; other C libraries are left as they are")
def test_tuned_malloc_reuses_freed_tensor_memory():
    applied, faults, pages = probe("tuned")
    assert applied == "True"
    assert faults < pages * 0.02, f"{faults} page faults for {pages} pages written"
