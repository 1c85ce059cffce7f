import errno
import os
import time
from pathlib import Path

import pytest

from ssinfnet import fileio


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.write_json(tmp_path / "a.json", {"x": 1})
        with fileio.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_text("1")
    with pytest.raises(FileExistsError):
        with fileio.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "new").write_text("2")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["old"]
    with fileio.atomic_dir(tmp_path / "d", overwrite=True) as tmp:
        (tmp / "new").write_text("2")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_json_handles_numpy(tmp_path):
    np = pytest.importorskip("numpy")
    fileio.write_json(tmp_path / "n.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert (tmp_path / "n.json").read_text().replace(" ", "").replace("\n", "") == '{"a":1.5,"b":[0,1]}'


def _dead_pid() -> int:
    return 2**22 + 4321  # above Linux's largest pid_max: no process has it


def test_temporaries_are_identifiable_and_name_their_process(tmp_path):
    seen = []
    with fileio.atomic_dir(tmp_path / "scan") as tmp:
        seen.append(tmp)
        with fileio.atomic_path(tmp / "labels.nii.gz") as tmp_file:
            seen.append(tmp_file)
            tmp_file.write_bytes(b"x")
    for tmp in seen:
        assert fileio.is_temporary(tmp) and f"-pid{os.getpid()}." in tmp.name
    assert not fileio.is_temporary(tmp_path / "scan") and not fileio.is_temporary(tmp_path / ".tmp")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["labels.nii.gz", "scan"]


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    host = fileio._host()
    dead = tmp_path / f".scan.{host}-pid{_dead_pid()}.abc.tmp"
    mine = tmp_path / f".scan.{host}-pid{os.getpid()}.def.tmp"
    elsewhere = tmp_path / f".scan.otherhost-pid{_dead_pid()}.ghi.tmp"  # another machine on a shared disk
    legacy_old = tmp_path / ".scan.k2j4h5.tmp"  # older versions named no process
    legacy_new = tmp_path / ".scan.q8w7e6.tmp"
    other_target = tmp_path / f".other.{host}-pid{_dead_pid()}.jkl.tmp"
    for path in (dead, mine, elsewhere, legacy_old, legacy_new, other_target):
        path.mkdir()
        (path / "labels.nii.gz").write_bytes(b"half")
    hours_ago = time.time() - 2 * fileio.STALE_AFTER_S
    os.utime(legacy_old, (hours_ago, hours_ago))
    with fileio.atomic_dir(tmp_path / "scan") as tmp:  # writing "scan" again cleans its stale temporaries
        (tmp / "labels.nii.gz").write_bytes(b"whole")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"scan", mine.name, elsewhere.name, legacy_new.name, other_target.name}
    assert fileio.remove_stale_temporaries(tmp_path) == [other_target]


def test_atomic_path_refuses_a_folder_before_writing(tmp_path):
    (tmp_path / "report.html").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        with fileio.atomic_path(tmp_path / "report.html") as tmp:
            tmp.write_text("never")
    assert err.value.filename == str(tmp_path / "report.html")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_errors_without_a_file_name_name_the_target(tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as err:
        fileio.write_json(tmp_path / "summary.json", {"a": 1})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "summary.json")
    assert list(tmp_path.iterdir()) == []


def test_an_overwrite_killed_between_its_renames_gets_the_old_folder_back(tmp_path):
    aside = tmp_path / f".scan.{fileio._host()}-pid{_dead_pid()}.abc{fileio.OLD_SUFFIX}"
    aside.mkdir()
    (aside / "labels.nii.gz").write_bytes(b"the previous result")
    assert fileio.remove_stale_temporaries(tmp_path) == [aside]
    assert (tmp_path / "scan" / "labels.nii.gz").read_bytes() == b"the previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["scan"]


def test_what_a_sigkilled_writer_leaves_is_cleaned_by_the_next_write(tmp_path):
    import signal
    import subprocess
    import sys

    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from ssinfnet import fileio\n"
        "with fileio.atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'labels.nii.gz').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(tmp_path / "scan")])
    assert killed.returncode == -signal.SIGKILL
    [left] = tmp_path.iterdir()
    assert fileio.is_temporary(left) and (left / "labels.nii.gz").read_bytes() == b"half"
    with fileio.atomic_dir(tmp_path / "scan") as tmp:
        (tmp / "labels.nii.gz").write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["scan"]
