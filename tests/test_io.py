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


def test_state_roundtrip_without_pickle(tmp_path):
    import torch

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    io.save_state({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "optim")
    back = io.load_state(tmp_path / "optim")
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    opt2.load_state_dict(back["optimizer"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name, v in s1["state"][k].items():
            assert torch.equal(v, s2["state"][k][name])
    assert back["scheduler"]["base_lrs"] == sched.state_dict()["base_lrs"]
    assert not list(tmp_path.glob("*.pt"))
