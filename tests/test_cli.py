"""The reform command: exit codes, JSON output, the home folder option."""

import json
import subprocess
import sys

import pytest

from conftest import reform_cmd
from reform.cli import main


def test_scan_status_errors_json(tmp_path, music, capsys):
    home = str(tmp_path / "home")
    (music / "broken.mp3").write_text("nope")
    assert main(["--home", home, "-q", "scan", str(music), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "analysed 4 songs" in out and "failed 1" in out
    assert main(["--home", home, "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["songs"] == 4 and status["failed"] == 1
    assert isinstance(status["songs"], int) and isinstance(status["failed"], int)
    assert main(["--home", home, "errors", "--json"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert len(errors) == 1 and errors[0]["path"].endswith("broken.mp3") and errors[0]["reason"]
    assert main(["--home", home, "-q", "scan"]) == 0
    assert "nothing to do: 4 songs unchanged" in capsys.readouterr().out


def test_reform_home_environment_variable(tmp_path, music, monkeypatch, capsys):
    monkeypatch.setenv("REFORM_HOME", str(tmp_path / "envhome"))
    assert main(["-q", "scan", str(music / "Tone Band"), "--jobs", "1"]) == 0
    assert (tmp_path / "envhome" / "catalogue.db").exists()
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 2


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "none"), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no library at") and "hint:" in err
    assert main(["--home", str(tmp_path / "h"), "scan", str(tmp_path / "missing")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_verbose_shows_traceback(tmp_path):
    from reform.errors import StoreError

    with pytest.raises(StoreError):
        main(["--home", str(tmp_path / "none"), "--verbose", "status"])


def test_help_is_instant_and_does_not_import_torch():
    code = "import sys; from reform.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run(reform_cmd("--help"), capture_output=True, text=True)
    assert result.returncode == 0 and "scan" in result.stdout
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert check.stdout.strip() == "False"
