import os

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
