"""`her2radiomics web`: the command without its optional extra, its defaults, and a core that never imports trame.

The page itself is tested in a real browser by test_web_browser.py (the web lane, scripts/web_lane.sh).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from her2radiomics import cli
from her2radiomics.commands import web


def test_missing_extra_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(web, "missing_web_modules", lambda: ["trame", "trame_slicer"])
    assert cli.main(["web", "--session", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "pip install .[web]" in err[0] and "trame_slicer" in err[0]


def test_missing_modules_are_found_by_name(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trame_slicer" else real(name, *a))
    assert "trame_slicer" in web.missing_web_modules()


def test_session_folder_must_exist(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(web, "missing_web_modules", lambda: [])
    assert cli.main(["web", "--session", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "QA session folder not found" in err and "her2radiomics qa init" in err


def test_binds_this_machine_only_by_default():
    args = cli.build_parser(only="web").parse_args(["web", "--session", "S"])
    assert args.host == "127.0.0.1" and args.port == 8080


def test_core_and_help_never_import_the_web_stack():
    code = ("import sys; from her2radiomics import cli; cli.build_parser(); "
            "import her2radiomics.qa, her2radiomics.commands.web; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('trame', 'trame_slicer', 'trame_server', 'HER2RadiomicsWeb')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8")
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([sys.executable, "-m", "her2radiomics", "--help"], capture_output=True, encoding="utf-8")
    assert res.returncode == 0 and "web" in res.stdout


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_bad_port_is_one_line(monkeypatch, tmp_path, capsys, port):
    monkeypatch.setattr(web, "missing_web_modules", lambda: [])
    assert cli.main(["web", "--session", str(tmp_path), "--port", port]) == 2
    assert "--port must be 0-65535" in capsys.readouterr().err


def test_folder_that_is_not_a_session_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(web, "missing_web_modules", lambda: [])
    (tmp_path / "x.txt").write_text("not a session")
    assert cli.main(["web", "--session", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
