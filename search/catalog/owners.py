"""Who runs a job, and whether they still do: the owner id and the liveness rule.

An embedded job (run in-process by ``mmsearch ingest`` or the API) is owned by one process,
recorded as host, pid and a start token, and that process writes the job's heartbeat every few
seconds. A distributed job has no single owner: whichever Celery worker handles one of its
tasks (or the CLI following it) writes the heartbeat. A job is orphaned, and shown as
interrupted, when

- its owner ran on this host and that process is gone: the pid is not alive, is a zombie, or
  now belongs to a process started at another time (pid reuse, caught by the start token); or
- its heartbeat is older than the timeout (an owner on another host, a distributed job, or a
  process that hangs).

A queued distributed job has no heartbeat yet and is never orphaned: its work waits in the
broker for a worker.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from .types import JobRecord

_SEP = "|"  # never part of a host name


@dataclass(frozen=True)
class JobOwner:
    """A process that runs jobs: where it runs, its pid, and when it started (the token)."""

    host: str
    pid: int
    token: str  # process start time in clock ticks since boot ("" where /proc is missing)

    @classmethod
    def current(cls) -> JobOwner:
        return cls(_host(), os.getpid(), process_token(os.getpid()) or "")

    def encode(self) -> str:
        return _SEP.join((self.host, str(self.pid), self.token))

    @classmethod
    def parse(cls, text: str) -> JobOwner | None:
        """The owner stored in a job row; None for text this code did not write."""
        parts = text.split(_SEP)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_local(self) -> bool:
        return self.host == _host()

    def is_alive(self) -> bool:
        """On this host: is the recorded process still running? (Meaningless for other hosts.)"""
        return process_alive(self.pid, self.token or None)


def orphan_reason(job: JobRecord, now: datetime, timeout: float) -> str | None:
    """Why ``job`` has nobody working on it any more, or None while it has (see the module doc)."""
    if job.status not in ("queued", "running"):
        return None
    owner = JobOwner.parse(job.owner) if job.owner else None
    if owner is not None and owner.is_local() and not owner.is_alive():
        return f"interrupted: the process running it ({owner.describe()}) is gone"
    if job.heartbeat_at is None or (job.status == "queued" and owner is None):
        return None
    silent = (now - job.heartbeat_at).total_seconds()
    if silent <= timeout:
        return None
    who = owner.describe() if owner is not None else "its workers"
    return f"interrupted: no heartbeat from {who} for {silent:.0f} s (the limit is {timeout:g} s); its runner is gone"


def process_token(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), or None without /proc."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_alive(pid: int, token: str | None = None) -> bool:
    """True when ``pid`` runs, is not a zombie, and (given a token) is the same process."""
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):  # killed but not yet reaped by its parent: gone
            return False
        reused = token is not None and len(fields) > 19 and fields[19] != token  # a newer process got the pid
        return not reused
    if Path("/proc/self/stat").exists():
        return False  # /proc works here and has no entry for the pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (so index 0 is the state, field 3)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


@cache
def _host() -> str:
    return socket.gethostname()
