"""The open-file limit of a server process: raised to what the system allows, and checked
against what the configuration will hold.

Every in-flight task holds a connection (a worker's call to Service A, a stub's answer to it),
and so does every client of Service B. Linux gives a process a soft limit of 1,024 open files
by default, far below what ``WORKER_PREFETCH`` or ``HTTP_MAX_CONNECTIONS`` ask for, under a
hard limit that is usually much higher (524,288 under systemd). A process may raise its own
soft limit up to the hard one, as Go's runtime and nginx's ``worker_rlimit_nofile`` do, so each
server process does that at start (``raise_open_file_limit``), and says so when even the hard
limit is short of what its settings need (``check_open_files``). Child processes inherit it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

FILE_RESERVE = 128  # descriptors kept for everything that is not a connection the settings count


def open_file_limit() -> int | None:
    """This process's soft limit of open files; None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> None:
    """Raise the soft limit to the hard limit (a warning when the kernel refuses it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:  # a hard limit the kernel refuses (above nr_open)
            log.warning("open-file limit not raised: %s", error, extra={"soft": soft, "hard": hard})


def check_open_files(needed: int, what: str) -> None:
    """Warn when ``needed`` connections (``what`` says which setting asks for them), with the
    reserve, do not fit in this process's open-file limit."""
    limit = open_file_limit()
    if limit is not None and needed + FILE_RESERVE > limit:
        log.warning("the open-file limit is below what %s needs: raise it (ulimit -n, "
                    "LimitNOFILE=, the container's nofile ulimit)", what,
                    extra={"open_file_limit": limit, "needed": needed + FILE_RESERVE})
