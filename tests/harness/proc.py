"""Child processes of a harness: each one recorded by PID, logged to files, stopped by PID.

A Supervisor starts every process in its own session, writes `PID STARTTIME NAME` to its pid file
(the start time tells a reused PID apart, so a shell trap can stop leftovers safely if the Python
driver itself is killed hard), sends stdout/stderr to LOGDIR/NAME.out and .err, and notes the
moment each child exits (a waiter thread). `install_stop_handlers()` turns SIGTERM/SIGINT/SIGHUP
into SystemExit, deferred while a child is being started so that none is ever left unrecorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from harness import Failure

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_stop = {"depth": 0, "pending": None}


def _on_stop_signal(signum, _frame):
    """Unwind (finally blocks and atexit stop every child), or do so right after a child has
    been started and recorded."""
    if _stop["depth"]:
        _stop["pending"] = signum
    else:
        raise SystemExit(128 + signum)


def install_stop_handlers():
    for s in STOP_SIGNALS:
        signal.signal(s, _on_stop_signal)


class _DeferredStop:
    def __enter__(self):
        _stop["depth"] += 1

    def __exit__(self, *exc):
        _stop["depth"] -= 1
        if not _stop["depth"] and _stop["pending"]:
            raise SystemExit(128 + _stop["pending"])


def proc_starttime(pid):
    """Field 22 of /proc/PID/stat: with the PID, it names one process (PIDs get reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def wait_until(predicate, timeout, interval=0.05):
    """Call predicate() until it returns something true or `timeout` seconds have passed; returns
    that value, or the last (false) one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run(argv, timeout=30, env=None, check_rc=True):
    """Run a short command to completion, output captured; Failure on a non-zero exit."""
    argv = [str(a) for a in argv]
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check_rc and r.returncode != 0:
        raise Failure(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


class Supervisor:
    """Starts processes and keeps the list of them, for stopping them all (by PID) at the end."""

    def __init__(self, logdir: Path, pidfile: Path):
        self.logdir = Path(logdir)
        self.pidfile = Path(pidfile)
        self.procs: list[Proc] = []

    def start(self, name, argv, env=None, cwd=None) -> Proc:
        return Proc(self, name, argv, env, cwd)

    def stop_all(self):
        live = [p for p in self.procs if p.running()]
        for p in live:
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in live:
            p.wait(max(0.0, deadline - time.monotonic()))
        for p in live:
            p.kill()


class Proc:
    """One child: its logs, its exit code and the monotonic time it exited."""

    def __init__(self, sup: Supervisor, name, argv, env, cwd):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.out_path = sup.logdir / f"{name}.out"
        self.err_path = sup.logdir / f"{name}.err"
        n = 1
        while self.out_path.exists():
            n += 1
            self.out_path = sup.logdir / f"{name}.{n}.out"
            self.err_path = sup.logdir / f"{name}.{n}.err"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.killed = False
        self.exited_at = None
        self.returncode = None
        self._done = threading.Event()
        self.started = time.monotonic()
        # No stop between starting the child and recording its PID (that would leak it). Blocking
        # the signals instead would hand the blocked mask down to the child.
        with _DeferredStop():
            self.p = subprocess.Popen(
                self.argv, env=env if env is not None else os.environ.copy(), cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, start_new_session=True,
            )
            self.pid = self.p.pid
            sup.procs.append(self)
            with open(sup.pidfile, "a") as f:
                f.write(f"{self.pid} {proc_starttime(self.pid)} {name}\n")
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        rc = self.p.wait()
        self.exited_at = time.monotonic()
        self.returncode = rc
        self._out.close()
        self._err.close()
        self._done.set()

    def running(self):
        return not self._done.is_set()

    def wait(self, timeout):
        """The exit code, or None if still running after `timeout` seconds."""
        self._done.wait(timeout)
        return self.returncode

    def signal(self, signum):
        if self.running():
            try:
                self.p.send_signal(signum)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILL if still running, noted in `killed`."""
        if self.running():
            self.killed = True
            self.signal(signal.SIGKILL)
            self._done.wait(5)

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self.signal(signal.SIGTERM)
        if self.wait(grace) is None:
            self.kill()

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def tail(self, n=15):
        lines = (self.stderr() + self.stdout()).splitlines()
        return "\n".join(f"      | {line}" for line in lines[-n:])
