"""Cancel ends every process of a background job, also behind a launcher like PythonSlicer (issue 10, defect 4).

``Testing/Python/fakes/PythonSlicer`` starts the real interpreter as a child and waits, as Slicer's launcher
does; ending only the launcher would leave the extraction running. The test reads /proc, so it runs on Linux.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from HER2RadiomicsLib import runner

LAUNCHER = Path(__file__).resolve().parent / "fakes" / "PythonSlicer"
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or os.name != "posix", reason="needs Linux /proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[2]))


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pgid:
                out.append(int(entry.name))
    return out


class SleepJob(runner.BackgroundJob):
    """A job whose 'worker' reports progress and then works for a minute (through the launcher)."""

    def command(self) -> list[str]:
        code = "import time\nprint('PROGRESS 0.10 working', flush=True)\ntime.sleep(60)\n"
        return [self.python, "-u", "-c", code]


def test_cancel_ends_the_launcher_and_its_child_within_2_s(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("HER2_FAKE_LAUNCHER_PIDS", str(pids))
    monkeypatch.setenv("HER2_REAL_PYTHON", sys.executable)
    job = SleepJob(tmp_path, python=str(LAUNCHER)).start()
    deadline = time.monotonic() + 30
    while job.progress < 0.1 and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.05)
    assert job.progress == pytest.approx(0.1), job.log
    child = int(pids.read_text(encoding="utf-8").split()[0])
    launcher = job._proc.pid
    assert _stat(child) is not None and _stat(launcher) is not None
    pgid = _stat(launcher)[1]
    assert pgid != os.getpgrp(), "the worker must run in its own process group (session), not in Slicer's"

    t0 = time.monotonic()
    job.cancel()
    assert time.monotonic() - t0 < 0.5, "cancel must not block the GUI"
    while time.monotonic() - t0 < 2.0 and (_stat(child) is not None or _group_members(pgid)):
        job.poll()
        time.sleep(0.05)
    assert _stat(child) is None, "the interpreter started by the launcher is still running after Cancel"
    assert _group_members(pgid) == [], "a process of the job's group outlived Cancel by 2 s"
    assert job.cancelled and not job.running


def test_result_reads_every_line_after_the_worker_ended(tmp_path):
    """The reader thread is joined before the result is read: a DONE line printed last is never lost."""

    class Chatty(runner.BackgroundJob):
        def command(self):
            code = (
                "import json, pathlib\n"
                "for i in range(2000): print(f'PROGRESS {i/2000:.4f} step', flush=True)\n"
                "pathlib.Path('features.json').write_text(json.dumps({'features': {'x': 1.0}}))\n"
                "print('DONE features.json', flush=True)\n"
            )
            return [self.python, "-u", "-c", code]

    job = Chatty(tmp_path).start()
    while job.running:
        time.sleep(0.01)
    assert job.result()["features"] == {"x": 1.0}
    assert job.log[-1].startswith("DONE")


def test_worker_is_started_in_a_new_session_with_no_console_window(monkeypatch, tmp_path):
    """POSIX: start_new_session; Windows: CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW (checked on the arguments)."""
    seen = {}

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            seen.update(kwargs)
            self.pid, self.stdout = 1, iter(())

        def poll(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", FakePopen)
    runner.BackgroundJob(tmp_path).start()
    assert seen.get("start_new_session") is True
    kwargs = runner.popen_group_kwargs("nt")
    assert kwargs["creationflags"] == 0x00000200 | 0x08000000 and "start_new_session" not in kwargs


def test_background_worker_spreads_the_case_over_the_cores(tmp_path, monkeypatch, small_params):
    """Issue 14: the panel's background extraction (the worker behind the PythonSlicer-like launcher, job.json
    without ``case_workers``) spreads the case over the case workers when the machine has two cores or more, and
    ``case_workers`` 1 in job.json keeps it in one process; the values are the same bit for bit."""
    import json

    from her2radiomics.features import available_cores
    from her2radiomics.phantom import make_phantom
    from her2radiomics.regions import build_regions

    ph = make_phantom(seed=2, size=(96, 96, 32), spacing=(0.9, 0.9, 1.6), lesion_radius_mm=4.0)
    masks = build_regions(ph.image, ph.lesion, (1.0, 3.0), air=ph.air, pectoralis=ph.pectoralis).feature_masks()
    monkeypatch.setenv("HER2_REAL_PYTHON", sys.executable)
    out = {}
    for workers in (None, 1):
        job = runner.prepare_job(ph.image, masks, str(small_params), tmp_path / f"job{workers}")
        assert "case_workers" not in json.loads((job / runner.JOB_FILE).read_text(encoding="utf-8"))
        if workers is not None:
            spec = json.loads((job / runner.JOB_FILE).read_text(encoding="utf-8"))
            (job / runner.JOB_FILE).write_text(json.dumps({**spec, "case_workers": workers}), encoding="utf-8")
        bg = runner.BackgroundJob(job, python=str(LAUNCHER)).start()
        assert bg.wait(300) == 0, bg.log
        out[workers] = bg.result()
    expected = min(2, available_cores())
    info = out[None]["info"]
    assert info["case_workers"] >= expected, info
    assert len(info["share_cpu_seconds"]) == info["case_workers"] and min(info["share_cpu_seconds"]) > 0
    assert out[1]["info"]["case_workers"] == 1
    assert out[None]["features"] == out[1]["features"]
