"""Whether a process or a process group is still running, read from /proc (zombies count as gone).

Shared by the fresh-Slicer tests that check a cancelled or closed job left nothing running (Linux only).
"""

from __future__ import annotations

import os
from pathlib import Path


def _state_fields(stat: str) -> list[str]:
    """The fields of a /proc/PID/stat line after the command name (which may hold spaces and parentheses)."""
    return stat[stat.rindex(")") + 2:].split()


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is neither a zombie nor dead."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return _state_fields(text)[0] not in ("Z", "X")


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` exists and is neither a zombie nor dead."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text(encoding="utf-8")
            except OSError:
                continue
            fields = _state_fields(text)
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False
