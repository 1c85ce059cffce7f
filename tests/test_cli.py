import subprocess
import sys
import types

import numpy as np
from PIL import Image

from ssinfnet.cli import main
from ssinfnet.errors import InputError


def test_help_lists_verbs(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: ssinfnet" in out and "data" in out


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


def test_validate_clean_folder_exits_0_and_writes_json(tmp_path, capsys):
    for i, mode in enumerate(("L", "RGB", "I;16")):
        array = np.full((10 + i, 12), 100 * (i + 1), np.uint16 if mode == "I;16" else np.uint8)
        image = Image.fromarray(array)
        (image.convert("RGB") if mode == "RGB" else image).save(tmp_path / f"{i}.png")
    out = tmp_path / "out" / "report.json"
    assert main(["data", "validate", str(tmp_path), "--json", str(out), "--deep"]) == 0
    text = capsys.readouterr().out
    assert "all: 3 slices" in text and "size (rows x cols): 10x12 .. 12x12" in text
    assert '"modes"' in out.read_text() and "I;16" in out.read_text()


def test_make_demo_calls_the_cohort_generator(tmp_path, monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("ssinfnet.data.demo_cohort")
    fake.make_demo_cohort = lambda out, **kwargs: calls.append((out, kwargs)) or out
    monkeypatch.setitem(sys.modules, "ssinfnet.data.demo_cohort", fake)
    assert main(["data", "make-demo", str(tmp_path / "demo"), "--subjects", "5", "--seed", "3"]) == 0
    assert calls == [(tmp_path / "demo", {"n_subjects": 5, "seed": 3, "overwrite": False})]
    assert str(tmp_path / "demo") in capsys.readouterr().out


def test_package_exports_segment_lazily():
    import ssinfnet
    from ssinfnet.inference.segment import segment

    assert ssinfnet.segment is segment
