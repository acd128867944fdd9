"""Keep freed memory in the process: stops the page-fault cost of large torch temporaries on CPU.

torch on CPU allocates every temporary with ``malloc``. glibc serves blocks above its mmap threshold
(128 KiB, adapted upward to at most 32 MiB only after such blocks are freed) with a fresh ``mmap`` and
gives them back to the kernel on ``free``, so every pair-sized tensor (1e5 pairs x 27 float64 = 22 MB)
is faulted in page by page again at every force evaluation. The polarff potential allocates several
such tensors per step. Raising the mmap and trim thresholds keeps the memory in the heap for reuse.

Measured (216 waters + NaCl, 650 atoms, 0.9 nm cutoffs, one energy + force evaluation, 1 thread):
172 ms with glibc defaults, 137 ms after :func:`keep_freed_memory` (the gathers of the induction
adjoint went from 26 to 9 ms). The cost is memory the process keeps after its peak (a few hundred MB
for this box).

This is a process-wide setting. polarff applies it when it builds or loads a polarff force
(:func:`polarff.openmm.system.make_force`, :func:`polarff.openmm.loading.load_system_xml`); set the
environment variable ``POLARFF_KEEP_FREED_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: Largest mmap threshold glibc accepts on 64-bit systems (32 MiB).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before trimming (1 GiB).
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
#: Extra memory requested from the kernel whenever the heap grows (64 MiB).
TOP_PAD_BYTES = 64 * 1024 * 1024

_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once per process (Linux with glibc only).

    Returns
    -------
    bool
        True if the thresholds are set (now or by an earlier call), False when disabled by
        ``POLARFF_KEEP_FREED_MEMORY=0``, on other platforms, or if ``mallopt`` is unavailable.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("POLARFF_KEEP_FREED_MEMORY", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
          and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
          and mallopt(_M_TOP_PAD, TOP_PAD_BYTES) == 1)
    _applied = ok
    return ok
