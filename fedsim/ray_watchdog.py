"""Ends a local Ray runtime whose fedsim process died without ending it (SIGKILL).

Run by ``fedsim.engines.ray.start_ray`` as ``python -m fedsim.ray_watchdog PARENT PID...``:
it watches the given Ray processes and, every half second, their descendants, and when
PARENT (the fedsim process) dies it SIGKILLs every one still running. It exits once it
has, or once none is left (after ``ray.shutdown``). Each process is known by its pid and
start time, so a reused pid is never killed. Linux only (it reads /proc); it imports
nothing of fedsim's, so it starts in milliseconds.

Why: on Linux Ray starts its GCS, raylet and monitors so that they die with the driver,
and the workers die with the raylet; but the raylet's dashboard and runtime-env agents,
on seeing it die, try to report that to the dead GCS and hang up to 60 s first.
"""

import os
import signal
import sys
import time

CHECK_SECONDS = 0.25  # how often the parent is checked
SCAN_EVERY = 2  # checks between scans for new descendants


def process_table() -> dict[int, tuple[int, bytes]]:
    """Every process's parent pid and start time, from /proc."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            found[int(name)] = (int(fields[1]), fields[19])
    return found


def with_descendants(watched: dict[int, bytes], table: dict[int, tuple[int, bytes]]) -> dict[int, bytes]:
    """The watched processes still running, and all their descendants."""
    alive = {pid: started for pid, started in watched.items() if table.get(pid, (0, None))[1] == started}
    grown = True
    while grown:
        grown = False
        for pid, (parent, started) in table.items():
            if parent in alive and pid not in alive:
                alive[pid] = started
                grown = True
    return alive


def watch(parent: int, roots: list[int]) -> None:
    table = process_table()
    watched = {pid: table[pid][1] for pid in roots if pid in table}
    checks = 0
    while watched:
        time.sleep(CHECK_SECONDS)
        checks += 1
        if os.getppid() != parent:  # fedsim died: this process has a new parent
            table = process_table()
            for pid, started in watched.items():
                if table.get(pid, (0, None))[1] == started:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            return
        if checks % SCAN_EVERY == 0:
            watched = with_descendants(watched, process_table())


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is fedsim's to handle
    watch(int(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])
