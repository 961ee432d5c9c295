"""Feature extraction in a background process, so Slicer never freezes (the pattern of SlicerMONAIAuto3DSeg; docs/architecture.md#layers).

:func:`prepare_job` writes the image, the region masks and the parameters into a job folder;
:class:`BackgroundJob` starts ``python -m HER2RadiomicsLib.extract_worker JOBDIR`` with
``subprocess.Popen``; a reader thread moves the worker's output lines into a queue, and the GUI's
``QTimer`` drains it on the main thread with :meth:`BackgroundJob.poll` (no Qt needed here, so the
runner is tested headless). Inside Slicer the worker is started through ``PythonSlicer``, a launcher that
runs the real interpreter as its *child*; ending the launcher alone would leave the extraction running. So
the worker gets its own process group (POSIX: a new session; Windows: ``CREATE_NEW_PROCESS_GROUP``, with
``CREATE_NO_WINDOW`` so no console pops up) and :meth:`BackgroundJob.cancel` ends the whole group
(``os.killpg``; ``taskkill /T /F``) without waiting on the GUI thread. The synchronous path
for scripts and tests is ``PanelLogic.extractFeatures``; both call
``her2radiomics.features.extract_case`` on the same masks, so they give the same numbers.

Worker protocol (one line each): ``PROGRESS <fraction 0-1> <message>``, ``ERROR <one line>``,
``DONE <path of features.json>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from her2radiomics.errors import UserError

JOB_FILE = "job.json"
RESULT_FILE = "features.json"
MODULE_DIR = Path(__file__).resolve().parents[1]   # holds HER2RadiomicsLib/ and her2radiomics/


def python_executable() -> str:
    """The Python to run the worker with: PythonSlicer inside Slicer, this interpreter otherwise."""
    slicer = sys.modules.get("slicer")
    if slicer is not None and getattr(slicer, "app", None) is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


#: Windows process-creation flags (winbase.h): CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


def popen_group_kwargs(os_name: str | None = None) -> dict[str, Any]:
    """``subprocess.Popen`` arguments that put the worker (and the launcher's child) in a group of its own."""
    if (os_name or os.name) == "nt":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def end_process_group(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """Ask every process of ``proc``'s group to end, then force it after ``grace`` s (blocking: run off the GUI)."""
    if os.name == "nt":
        # taskkill /T ends the process tree (the launcher's python child too); /F forces it
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True,
                       creationflags=CREATE_NO_WINDOW, check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        return
    import signal

    pgid = proc.pid  # start_new_session: the worker leads its own session and group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return  # the whole group has gone
        if proc.poll() is not None and time.monotonic() + 0.2 >= deadline:
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)


def prepare_job(image: sitk.Image, masks: Mapping[str, sitk.Image], params: Mapping[str, Any] | str | None,
                workdir: str | os.PathLike[str] | None = None) -> Path:
    """Write the inputs of one extraction (uncompressed NRRD, params as JSON) into a job folder."""
    job = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="her2radiomics-job-"))
    job.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(job / "image.nrrd"), False)
    names = []
    for name, mask in masks.items():
        sitk.WriteImage(mask, str(job / f"{name}.nrrd"), False)
        names.append(name)
    spec = {"image": "image.nrrd", "masks": {n: f"{n}.nrrd" for n in names}}
    if isinstance(params, Mapping):
        spec["params"] = dict(params)
    else:
        spec["params_file"] = str(params) if params else None
    (job / JOB_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return job


@dataclass
class BackgroundJob:
    """One background extraction; poll() from a timer, cancel() any time."""

    jobdir: Path
    python: str = field(default_factory=python_executable)
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    log: list[str] = field(default_factory=list)
    _proc: subprocess.Popen | None = None
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _killer: threading.Thread | None = None
    _cancelled: bool = False
    started: float = 0.0

    def command(self) -> list[str]:
        return [self.python, "-u", "-m", "HER2RadiomicsLib.extract_worker", str(self.jobdir)]

    def start(self) -> BackgroundJob:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(MODULE_DIR) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(self.jobdir),
            **popen_group_kwargs(),
        )
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def running(self) -> bool:
        """True until the worker ended AND its output was read to the end (the reader thread finished)."""
        if self._proc is None:
            return False
        if self._proc.poll() is None:
            return True
        return self._thread is not None and self._thread.is_alive() and not self._cancelled

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def poll(self) -> list[str]:
        """Drain the output received so far (non-blocking); updates progress / message / error."""
        lines = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue
            lines.append(line)
            self.log.append(line)
            kind, _, rest = line.partition(" ")
            if kind == "PROGRESS":
                frac, _, msg = rest.partition(" ")
                with contextlib.suppress(ValueError):
                    self.progress = float(frac)
                self.message = msg
            elif kind == "ERROR":
                self.error = rest
        return lines

    def wait(self, timeout: float | None = None) -> int:
        """Block until the worker ends (synchronous use); returns its exit code."""
        assert self._proc is not None
        code = self._proc.wait(timeout)
        if self._thread is not None:
            self._thread.join(5)
        self.poll()
        return code

    def cancel(self, grace: float = 1.0, wait: bool = False, cleanup: bool = False) -> None:
        """End every process of the job's group: SIGTERM, SIGKILL after ``grace`` s (taskkill /T /F on Windows).

        Returns at once (the GUI never waits); the ending runs on a thread, joined when ``wait`` is true
        (tests, module cleanup). ``cleanup``: remove the job folder once the group has ended.
        """
        self._cancelled = True
        if self._proc is None:
            if cleanup:
                self.cleanup()
            return
        if self._killer is None:
            def end() -> None:
                end_process_group(self._proc, grace)
                if cleanup:
                    self.cleanup()

            self._killer = threading.Thread(target=end, daemon=True)
            self._killer.start()
        if wait:
            self._killer.join(grace + 3.0)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def result(self) -> dict[str, Any]:
        """The worker's output ({"features": {...}, "info": {...}}); UserError when it failed or was cancelled."""
        if self._cancelled:
            raise UserError("feature extraction was cancelled")
        if self.running:
            raise UserError("feature extraction is still running")
        if self._thread is not None:
            self._thread.join(5)  # every line the worker printed is in the queue before it is read
        self.poll()
        if self.returncode != 0 or self.error:
            tail = self.error or (self.log[-1] if self.log else f"exit code {self.returncode}")
            raise UserError(f"feature extraction failed: {tail}")
        path = self.jobdir / RESULT_FILE
        if not path.is_file():
            raise UserError("feature extraction ended without writing its result")
        return json.loads(path.read_text(encoding="utf-8"))

    def cleanup(self) -> None:
        shutil.rmtree(self.jobdir, ignore_errors=True)
