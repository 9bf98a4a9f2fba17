"""Resume only what the same configuration wrote (study/resume.py): the work directory's claim and the order in
which a stage's sub-stages are kept or done again."""

from study.resume import claim_work_dir, run_sub_stages


def test_a_work_dir_is_resumed_only_under_the_fingerprint_that_wrote_it(tmp_path):
    work, lines = tmp_path / "w", []
    assert claim_work_dir(work, {"a": 1}, "x", lines.append) is False and lines == []  # nothing there yet
    (work / "state.bin").write_bytes(b"1")
    assert claim_work_dir(work, {"a": 1}, "x", lines.append) is True
    assert (work / "state.bin").is_file() and lines[-1].startswith("resuming x")
    assert claim_work_dir(work, {"a": 2}, "x", lines.append) is False
    assert not (work / "state.bin").exists() and "written with other a" in lines[-1]


def test_sub_stages_are_kept_while_resuming_until_the_first_one_done_again(tmp_path):
    """Kept: a and b are done; c is not, so c runs, and d runs although it is done (it reads c's outputs)."""
    ran, lines = [], []
    done = {"a": True, "b": True, "c": False, "d": True}
    steps = [(n, lambda n=n: done[n], lambda n=n: ran.append(n)) for n in "abcd"]
    run_sub_stages(True, steps, "seed 1", lines.append)
    assert ran == ["c", "d"]
    assert lines == ["seed 1: a kept from the interrupted run", "seed 1: b kept from the interrupted run"] + [
        "seed 1: c",
        "seed 1: d",
    ]
    ran.clear()
    run_sub_stages(False, steps, "seed 1", lines.append)  # a fresh work directory: everything runs
    assert ran == ["a", "b", "c", "d"]
