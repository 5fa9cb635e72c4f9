"""Kept pi processes: one pi in RPC mode serves many replayed trials, a new session each, since
starting Node and pi costs more than most replayed trials. Idle ones are kept by command line
(at most PiPool.max_idle, oldest dropped) and stopped at exit."""
from __future__ import annotations

import atexit
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

from pytest_tbreplay.harnesses.pi.events import update_kind


class PiProcess:
    """A running pi and its stdout, read line by line on a thread (token events are only counted).

    Starting pi costs about 2 s of CPU (Node loading its modules) before it does anything, which
    made pi's start-ups most of the default test run. So a replay trial in RPC mode takes an idle
    pi started with the same command line from `_IDLE`, and gives it back when the trial ended
    cleanly. Between trials pi.py rewrites models.json, settings.json and the extensions' config
    in the process' `home`, and `renew()` asks pi for a new session: pi then reads those files
    again and loads the extensions afresh (common.ts drops the previous trial's state), so each
    trial sees what a fresh pi would, except its working folder and stderr file, which stay the
    process'."""

    def __init__(self, args: list[str], home: Path, cwd: Path, env: dict, stdin, stdout_log: Path | None = None,
                 owns_home: bool = False):
        self.args, self.home, self.owns_home = args, home, owns_home
        self.stderr = home / "stderr.txt"
        with open(self.stderr, "ab") as stderr:
            self.proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.ids = 0
        threading.Thread(target=self._read, args=(stdout_log,), daemon=True).start()

    def _read(self, stdout_log: Path | None) -> None:
        log = open(stdout_log, "wb") if stdout_log else None
        for line in self.proc.stdout:
            if log:
                log.write(line)
            if (kind := update_kind(line)) is not None:
                if kind:
                    self.lines.put(("token", kind, time.monotonic()))
                continue
            try:
                self.lines.put(("event", json.loads(line), None))
            except ValueError:
                continue  # not an event (a stray console line)
        if log:
            log.close()
        self.lines.put(None)

    def send(self, command: dict) -> str:
        self.ids += 1
        command["id"] = f"tb{self.ids}"
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        return command["id"]

    def renew(self, timeout: float = 30.0) -> bool:
        """A new session in a kept pi; False when it does not answer as it should (then stop it)."""
        if self.proc.poll() is not None:
            return False
        want, deadline = self.send({"type": "new_session"}), time.monotonic() + timeout
        while (wait := deadline - time.monotonic()) > 0:
            try:
                item = self.lines.get(timeout=wait)
            except queue.Empty:
                return False
            if item is None:
                return False
            if item[0] == "event" and item[1].get("type") == "response" and item[1].get("id") == want:
                return bool(item[1].get("success")) and not (item[1].get("data") or {}).get("cancelled")
        return False

    def stderr_size(self) -> int:
        return self.stderr.stat().st_size

    def stderr_tail(self, since: int, n: int = 3000) -> str:
        with open(self.stderr, errors="replace") as f:
            f.seek(since)
            return f.read()[-n:]

    def stop(self) -> None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()  # RPC mode ends on EOF
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        if self.owns_home:
            shutil.rmtree(self.home, ignore_errors=True)


class PiPool:
    """Idle kept pis between trials, one per command line (a trial takes the one started with its
    command line), the least recently used dropped past `max_idle`. Locked: trials on threads of
    one process share it."""

    def __init__(self, max_idle: int = 8):  # each idle pi holds 100-200 MB; replays of one model use one command line
        self.max_idle = max_idle
        self._idle: dict[tuple, PiProcess] = {}  # oldest first
        self._lock = threading.Lock()

    def take(self, args: list[str]) -> PiProcess | None:
        with self._lock:
            return self._idle.pop(tuple(args), None)

    def give_back(self, pi: PiProcess) -> None:
        with self._lock:
            spare = [self._idle.pop(tuple(pi.args))] if tuple(pi.args) in self._idle else []
            self._idle[tuple(pi.args)] = pi
            while len(self._idle) > self.max_idle:
                spare.append(self._idle.pop(next(iter(self._idle))))
        for process in spare:
            process.close()

    def stop(self) -> None:
        """End every kept pi (at exit; tests call it to start from nothing)."""
        with self._lock:
            kept = list(self._idle.values())
            self._idle.clear()
        for pi in kept:
            pi.close()


POOL = PiPool()
atexit.register(POOL.stop)
stop_idle = POOL.stop
