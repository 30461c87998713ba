"""Keep one command running: `python -m fleet_portal.respawn -- <command> ...`.

`make run` starts the portal, the worker and the sandbox under honcho, which
stops them all as soon as one exits. Each Procfile line runs its command under
this wrapper instead, so a process that dies (a crash, the OOM killer, a
SIGKILL) is started again after a short wait and the others never notice.

A SIGTERM or SIGINT to the wrapper (honcho's Ctrl-C) is passed to the command
once and ends the wrapper when the command has exited. The command runs in a
process group of its own, so honcho's signal to the wrapper's group reaches it
only through the wrapper, once. Waits double after each quick death (0.5 s up
to 30 s) and start again from 0.5 s after a run that lasted a minute.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

FIRST_WAIT = 0.5
MAX_WAIT = 30.0
# A run this long was a healthy one: the next death waits only FIRST_WAIT.
HEALTHY_AFTER = 60.0


def say(message: str) -> None:
    print(f"respawn: {message}", file=sys.stderr, flush=True)


class Respawner:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None

    def stop(self, signum: int, frame: object) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        wait = FIRST_WAIT
        returncode = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            # The command is the Procfile line this wrapper was given: ours.
            self.child = subprocess.Popen(self.command, start_new_session=True)  # noqa: S603
            returncode = self.child.wait()
            if self.stopping.is_set():
                break
            if time.monotonic() - started >= HEALTHY_AFTER:
                wait = FIRST_WAIT
            say(f"{self.command[-1]!r} exited with {returncode}; starting it again in {wait:.1f}s")
            self.stopping.wait(wait)
            wait = min(MAX_WAIT, wait * 2)
        return returncode


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print(__doc__, file=sys.stderr)
        return 2
    return Respawner(argv[argv.index("--") + 1 :]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
