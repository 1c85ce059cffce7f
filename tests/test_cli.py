import subprocess
import sys

from ssinfnet.cli import main
from ssinfnet.errors import InputError


def test_help_lists_verbs(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: ssinfnet" in out


def test_input_error_is_one_line(tmp_path):
    missing = tmp_path / "nope"
    proc = subprocess.run(
        [sys.executable, "-m", "ssinfnet", "data", "validate", str(missing)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0]
    assert "Traceback" not in proc.stderr


def test_input_error_str():
    assert str(InputError("bad", "/x.png")) == "/x.png: bad"
    assert str(InputError("bad")) == "bad"
