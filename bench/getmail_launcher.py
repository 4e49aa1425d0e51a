"""Run getmail6 with the fix for its child-wait race; used by sync_bench.py.

Usage: ``python3 getmail_launcher.py /usr/bin/getmail ARGS...`` with the interpreter of
getmail's own ``#!`` line.

getmail6 before 6.19 (Debian 12 ships 6.18.11) forks a delivery child per message and
learns of its exit through a SIGCHLD handler it installs *after* the fork; when the child
finishes first the signal is lost and getmail gives up with "waiting child pid N timed
out" (getmail6 issues #52 and #226; upstream later waits with ``multiprocessing``'s
``join``, that is ``waitpid``). On a busy machine that happened within a 20,000-message
run. This launcher does what upstream does now — wait for the child with
``os.waitpid`` — and changes nothing else, so the reference keeps its speed; a getmail
without the racy methods is run unchanged.
"""

from __future__ import annotations

import os
import runpy
import sys


def _patch() -> None:
    # getmailcore lives in the system Python that runs getmail, not in the project's venv.
    from getmailcore import baseclasses  # type: ignore[import-not-found]
    from getmailcore.exceptions import getmailOperationError  # type: ignore[import-not-found]

    forking = baseclasses.ForkingBase
    if not hasattr(forking, "_prepare_child"):
        return  # a getmail that no longer has the race

    def prepare_child(self: object) -> None:
        return None

    def wait_for_child(self: object, childpid: int) -> int:
        while True:
            try:
                pid, status = os.waitpid(childpid, 0)
                break
            except InterruptedError:
                continue
        if pid != childpid:
            raise getmailOperationError(f"got child pid {pid}, not {childpid}")
        if os.WIFSIGNALED(status):
            raise getmailOperationError(
                f"child pid {childpid} killed by signal {os.WTERMSIG(status)}"
            )
        if not os.WIFEXITED(status):
            raise getmailOperationError(f"child pid {childpid} failed to exit")
        return os.WEXITSTATUS(status)

    forking._prepare_child = prepare_child
    forking._wait_for_child = wait_for_child


def main() -> None:
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    _patch()
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
