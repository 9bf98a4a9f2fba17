import numpy as np
import pytest

from study import io


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    f = tmp_path / "out.json"
    io.write_json(f, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(f) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert '"a": 1' in f.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    d = tmp_path / "world"
    with io.atomic_dir(d) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(d) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("killed")
    assert sorted(p.name for p in d.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def test_array_roundtrip_without_pickle(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    io.save_array(tmp_path / "a.npy", a)
    assert np.array_equal(io.load_array(tmp_path / "a.npy"), a)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        io.load_array(tmp_path / "obj.npy")


def test_read_jsonl_names_the_bad_line(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n{bad\n')
    with pytest.raises(ValueError, match="line 2"):
        io.read_jsonl(f)
