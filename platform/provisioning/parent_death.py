"""Tie a process to its parent: Linux sends it a signal when the parent dies, however it dies,
SIGKILL included (``PR_SET_PDEATHSIG``). The worker pool's children use it, so a pool killed
outright leaves no orphan worker consuming beside the pool started in its place; the
development kit's launchers use it for the processes they start."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (elsewhere: nothing).

    Called in the child between fork and exec, and by a launcher for itself. If the parent is
    already gone by then, the signal would never come: the process sends it to itself.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), sig)
