"""Finding checks on hand-made verdicts, and the paper tables."""

import pandas as pd

from study.config import load_params
from study.report import comparison, findings

ROLES = load_params("params.yaml").report.findings  # the default runs of each role (dpo_bdhs, ...)


def _f1(c):
    return findings.f1(c, ROLES)


def _f2(c):
    return findings.f2(c, ROLES)


def _f3(c):
    return findings.f3(c, ROLES)


def _f7_rl(c, runs):
    return findings.f7_rl(c, runs, ROLES)


def _check_all(c, runs, rm):
    return findings.check_all(c, runs, rm, ROLES)


def _paper_summary(c, runs, rm, degenerate):
    return findings.paper_summary(c, runs, rm, degenerate, ROLES)


def _compare(table: dict):
    def compare(a, b, col):
        return table.get((a, b, col), "not resolved")

    compare.cache = {}
    return compare


def test_f1_needs_a_better_hallucination_column_and_no_worse_one():
    assert _f1(_compare({}))["status"] == "not resolved"
    assert _f1(_compare({("dpo_bdhs", "SFT", "CHAIR_i"): "better"}))["status"] == "reproduced"
    both = {("dpo_bdhs", "SFT", "CHAIR_i"): "better", ("dpo_bdhs", "SFT", "CHAIR_s"): "worse"}
    assert _f1(_compare(both))["status"] == "mixed"
    assert _f1(_compare({("dpo_bdhs", "SFT", "POPE adv"): "missing"}))["status"] == "missing"


def test_f2_is_contradicted_by_any_worse_column():
    assert _f2(_compare({}))["status"].startswith("reproduced (no column worse")
    worse = {("avg_povid_bdhs", "avg_povid_distortion", "Recall"): "worse"}
    assert _f2(_compare(worse))["status"] == "contradicted"


def test_f3_needs_both_gains_and_mixed_keeping_them():
    gains = {("dpo_povid", "SFT", "CHAIR_i"): "better", ("online_dpo_oracle", "SFT", "Helpful"): "better"}
    assert _f3(_compare({})).get("status").startswith("not resolved (no offline hallucination gain and")
    assert _f3(_compare({**gains}))["status"] == "contradicted"
    one = {**gains, ("mixed_dpo_povid", "SFT", "CHAIR_i"): "better"}
    assert _f3(_compare(one))["status"] == "mixed"
    both = {**one, ("mixed_dpo_povid", "SFT", "Helpful"): "better"}
    assert _f3(_compare(both))["status"] == "reproduced"
    only_off = {("dpo_povid", "SFT", "CHAIR_i"): "better"}
    assert _f3(_compare(only_off))["status"] == "not resolved (no online helpfulness gain over SFT to combine)"


def _cell(lo, hi):
    return {"value": (lo + hi) / 2, "ci95": [lo, hi]}


def test_f7_ours_reads_the_reward_model_transfer_table():
    acc = {
        "povid": {"povid": _cell(0.8, 0.9), "vlfeedback": _cell(0.45, 0.55)},
        "vlfeedback": {"vlfeedback": _cell(0.6, 0.7), "povid": _cell(0.3, 0.4)},
    }
    assert findings.f7_ours({"accuracy": acc})["status"] == "reproduced"
    acc["povid"]["vlfeedback"] = _cell(0.7, 0.8)
    assert findings.f7_ours({"accuracy": acc})["status"] == "mixed"
    acc["vlfeedback"]["povid"] = _cell(0.6, 0.7)
    assert findings.f7_ours({"accuracy": acc})["status"] == "contradicted"
    assert findings.f7_ours(None)["status"] == "missing"


def _table7(povid_on_rlhfv, rlhfv_on_povid, diag=(0.9, 0.8)):
    return {
        "accuracy": {
            "povid": {
                "povid": _cell(diag[0] - 0.05, diag[0] + 0.05),
                "rlhfv": povid_on_rlhfv,
                "vlfeedback": _cell(0.5, 0.6),
            },
            "rlhfv": {
                "rlhfv": _cell(diag[1] - 0.05, diag[1] + 0.05),
                "povid": rlhfv_on_povid,
                "vlfeedback": _cell(0.5, 0.6),
            },
            "vlfeedback": {"vlfeedback": _cell(0.7, 0.8), "povid": _cell(0.56, 0.66), "rlhfv": _cell(0.5, 0.6)},
        }
    }


def test_f7_is_the_papers_claim_below_chance_on_each_others_pairs():
    """The paper's Table 7 (LLaVA 1.5: POVID RM 0.24 on RLHF-V, RLHF-V RM 0.12 on POVID) reproduces F7 even
    though its VLFeedback RM is above chance on POVID pairs (0.61), which the earlier rule would fail."""
    paper = _table7(_cell(0.18, 0.30), _cell(0.08, 0.16))
    assert findings.f7(paper)["status"] == "reproduced"
    assert findings.f7_ours(paper)["status"] != "reproduced"
    assert findings.f7(_table7(_cell(0.18, 0.30), _cell(0.45, 0.55)))["status"] == "mixed"
    assert findings.f7(_table7(_cell(0.45, 0.55), _cell(0.55, 0.65)))["status"] == "contradicted"
    weak = findings.f7(_table7(_cell(0.18, 0.30), _cell(0.08, 0.16), diag=(0.55, 0.8)))
    assert weak["status"] == "not resolved (the povid RM is at chance in distribution)"
    assert findings.f7(None)["status"] == "missing"
    assert findings.f7({"accuracy": {"povid": {"povid": _cell(0.8, 0.9)}}})["status"] == "missing"


def test_rules_record_every_finding_with_its_commit_and_keep_earlier_verdicts_beside():
    assert set(findings.RULES) == {"F1", "F2", "F3", "F7", "F7-RL", "POPE", "COLUMNS", "DRAWS"}
    for name, versions in findings.RULES.items():
        assert [r.version for r in versions] == list(range(1, len(versions) + 1))
        assert all(r.introduced and r.text for r in versions)
        assert all(r.why for r in versions if r.after_results)
    # F3: v1 says reproduced where v2 says the premise is missing (no gains to combine)
    cmp = _compare({("mixed_dpo_povid", "SFT", "CHAIR_i"): "better"})
    out = _check_all(cmp, _rl_runs([True, True]), _table7(_cell(0.18, 0.30), _cell(0.08, 0.16)))
    f3 = out["F3"]
    assert f3["rule"]["version"] == 2 and f3["status"].startswith("not resolved")
    assert [(e["version"], e["status"]) for e in f3["earlier_rules"] if "rule_of" not in e] == [(1, "reproduced")]
    assert out["F7"]["status"] == "reproduced" and out["F7"]["earlier_rules"][0]["status"] == "mixed"
    assert out["F1"]["earlier_rules"] == [
        {**findings._rule(findings.RULES["COLUMNS"][0]), "rule_of": "COLUMNS", "status": "not resolved"},
        {**findings._rule(findings.RULES["POPE"][0]), "rule_of": "POPE", "status": "not resolved"},
    ]


def test_earlier_pope_rule_lets_pope_decide_again(spec):
    """``compare.pope_decides`` gives the pre-7ff7919 verdict: a POPE difference against a degenerate model
    counts again; the current compare calls it not measurable."""

    def rows(answers):
        return [
            {
                "item_id": f"p{i}",
                "suite": "pope_adversarial",
                "scene_id": f"s{i // 2}",
                "label": "yes" if i % 2 else "no",
                "answer": a,
                "prompt": "is there a cup in the image ?",
            }
            for i, a in enumerate(answers)
        ]

    preds = {"SFT": [rows(["yes"] * 40)], "dpo_bdhs": [rows(["no", "yes"] * 20)]}
    cmp = findings.paired_compare(preds, [], spec, n_boot=50, degenerate={"SFT"})
    assert cmp("dpo_bdhs", "SFT", "POPE adv") == "not measurable"
    assert cmp.pope_decides("dpo_bdhs", "SFT", "POPE adv") == "better"
    hand = _compare({("dpo_bdhs", "SFT", "POPE adv"): "not measurable"})
    hand.pope_decides = _compare({("dpo_bdhs", "SFT", "POPE adv"): "better"})
    out = _check_all(hand, _rl_runs([True, True]), None)
    assert out["F1"]["status"] == "not resolved"
    assert [(e["rule_of"], e["status"]) for e in out["F1"]["earlier_rules"]] == [
        ("COLUMNS", "not resolved"),
        ("POPE", "reproduced"),
    ]


def test_paper_tables_and_delta_table():
    m = {"value": 0.3, "ci95": [0.2, 0.4]}
    runs = {
        "SFT": {"describe": {"chair_i": m}},
        "dpo_povid": {"describe": {"chair_i": m}, "_meta": {"method": "dpo", "seeds": [0, 1, 2]}},
        "ipo_povid": {"describe": {"chair_i": m}, "_meta": {"method": "ipo", "seeds": [0]}},
    }
    main = comparison.wide(comparison.comparison_table(runs))
    sub = comparison.subtable(main, ["slic_povid", "dpo_povid"])
    assert list(sub.index) == ["SFT", "dpo_povid"] and list(sub.columns) == ["Seeds", "CHAIR_i"]
    assert list(main["Seeds"]) == [1, 3, 1]  # every table says how many training seeds a row averages
    cmp = _compare({("dpo_povid", "SFT", "CHAIR_i"): "better"})
    cmp.cache = {("dpo_povid", "SFT", c): {"delta": -0.021, "ci95": [-0.034, -0.008]} for c, *_ in comparison.COLUMNS}
    d = findings.delta_table(cmp, ["SFT", "dpo_povid"])
    assert isinstance(d, pd.DataFrame) and d.loc["dpo_povid", "CHAIR_i"] == "-2.1 [-3.4, -0.8] +"
    assert d.loc["dpo_povid", "Recall"] == "-2.1 [-3.4, -0.8]"


def test_degenerate_pope_answerers_make_pope_not_measurable():
    pope = lambda y: {
        s: {"yes_ratio": {"value": y, "ci95": [y, y]}} for s in ("pope_random", "pope_popular", "pope_adversarial")
    }
    runs = {"SFT": pope(0.96), "dpo_bdhs": pope(0.6), "ok": pope(0.5)}
    assert findings.degenerate_pope(runs) == {"SFT"}
    assert findings.degenerate_pope({"no": pope(0.03)}) == {"no"}
    # a POPE difference against a degenerate model is not a verdict, and F1 does not count it
    status = _f1(_compare({("dpo_bdhs", "SFT", "POPE adv"): "not measurable"}))["status"]
    assert status == "not resolved"


def test_paired_compare_marks_pope_of_degenerate_models_but_still_measures_the_difference(spec):
    def rows(answers):
        return [
            {
                "item_id": f"p{i}",
                "suite": "pope_random",
                "scene_id": f"s{i // 2}",
                "label": "yes" if i % 2 else "no",
                "answer": a,
                "prompt": "is there a cup in the image ?",
            }
            for i, a in enumerate(answers)
        ]

    preds = {"SFT": [rows(["yes"] * 40)], "dpo_bdhs": [rows(["no", "yes"] * 20)]}
    cmp = findings.paired_compare(preds, [], spec, n_boot=50, degenerate={"SFT"})
    assert cmp("dpo_bdhs", "SFT", "POPE rand") == "not measurable"
    assert cmp.cache[("dpo_bdhs", "SFT", "POPE rand")]["delta"] == 0.5
    plain = findings.paired_compare(preds, [], spec, n_boot=50)
    assert plain("dpo_bdhs", "SFT", "POPE rand") == "better"


def test_compare_models_reads_sft_and_seed_directories(tmp_path, spec):
    from study import io

    def rows(answers):
        return [
            {
                "item_id": f"p{i}",
                "suite": "pope_random",
                "scene_id": f"s{i // 2}",
                "label": "yes" if i % 2 else "no",
                "answer": a,
                "prompt": "is there a cup in the image ?",
            }
            for i, a in enumerate(answers)
        ]

    io.write_jsonl(tmp_path / "sft" / "predictions.jsonl", rows(["yes"] * 20))
    io.write_jsonl(tmp_path / "sft" / "scenes.jsonl", [])
    for k, ans in ((0, ["no", "yes"] * 10), (1, ["yes"] * 20)):
        io.write_jsonl(tmp_path / "run" / f"seed{k}" / "predictions.jsonl", rows(ans))
        io.write_jsonl(tmp_path / "run" / f"seed{k}" / "scenes.jsonl", [])
    yes = lambda y: {"pope_random": {"yes_ratio": {"value": y, "ci95": [y, y]}}}
    cmp, degenerate = findings.compare_models(tmp_path, {"SFT": yes(1.0), "run": yes(0.75)}, spec, n_boot=50)
    assert degenerate == {"SFT"}
    assert cmp("run", "SFT", "POPE rand") == "not measurable"
    assert cmp.cache[("run", "SFT", "POPE rand")]["delta"] == 0.25  # seed mean (1.0 + 0.5) / 2 - 0.5


def _rl_runs(povid_collapsed: list[bool], seeds: int = 2) -> dict:
    runs = {r: {} for r in ("dpo_povid", "rloo_rm_vlfeedback", "ppo_rm_vlfeedback")}
    for r, flag in zip(ROLES.rl_construction_rm, povid_collapsed):
        per_seed = {str(k): {"collapse/collapsed": flag and k == seeds - 1} for k in range(seeds)}
        runs[r] = {"train_per_seed": per_seed}
    return runs


def test_f7_rl_reads_collapse_flags_and_paired_verdicts_against_dpo():
    none_collapsed = _rl_runs([False, False])
    # no collapse and no gain over DPO: one part contradicted, the other reproduced
    out = _f7_rl(_compare({}), none_collapsed)
    assert out["collapse_with_povid_rm"]["status"] == "contradicted"
    assert out["no_gain_over_dpo_with_vlfeedback_rm"]["status"] == "reproduced"
    assert out["status"] == "mixed"
    # both POVID-RM runs collapse (in their last seed) and no VLFeedback-RM run beats DPO: reproduced
    assert _f7_rl(_compare({}), _rl_runs([True, True]))["status"] == "reproduced"
    # a VLFeedback-RM run better than DPO somewhere and worse nowhere beats it; better + worse does not
    gain = {("rloo_rm_vlfeedback", "dpo_povid", "Helpful"): "better"}
    out = _f7_rl(_compare(gain), _rl_runs([True, False]))
    assert out["collapse_with_povid_rm"]["status"] == "mixed"
    assert out["no_gain_over_dpo_with_vlfeedback_rm"]["beats_dpo"] == {
        "rloo_rm_vlfeedback": True,
        "ppo_rm_vlfeedback": False,
    }
    assert out["no_gain_over_dpo_with_vlfeedback_rm"]["status"] == "mixed"
    traded = {
        **gain,
        ("rloo_rm_vlfeedback", "dpo_povid", "CHAIR_i"): "worse",
        ("ppo_rm_vlfeedback", "dpo_povid", "Recall"): "better",
    }
    beats = _f7_rl(_compare(traded), none_collapsed)["no_gain_over_dpo_with_vlfeedback_rm"]["beats_dpo"]
    assert beats == {"rloo_rm_vlfeedback": False, "ppo_rm_vlfeedback": True}
    # an absent run, or a run without a collapse report
    partial = {k: v for k, v in none_collapsed.items() if k != "ppo_rm_povid"}
    assert _f7_rl(_compare({}), partial)["status"] == "missing"
    assert _f7_rl(_compare({}), {**none_collapsed, "ppo_rm_povid": {"train": {}}})["status"] == "missing"


def test_train_summary_keeps_one_level_of_nested_statistics():
    from study.align.stage import train_summary

    out = train_summary(
        {
            "wall_s": 3.5,
            "method": "ppo",
            "history": [1, 2],
            "collapse": {"collapsed": True, "collapse_step": 7, "detail": {"x": 1}},
        }
    )
    assert out == {"wall_s": 3.5, "method": "ppo", "collapse/collapsed": True, "collapse/collapse_step": 7}


def test_check_all_states_every_finding_with_a_claim_and_a_status():
    out = _check_all(_compare({("dpo_bdhs", "SFT", "CHAIR_i"): "better"}), _rl_runs([True, True]), None)
    assert list(out) == ["F1", "F2", "F3", "F7", "F7-RL"]
    assert all(v["claim"] and v["status"] for v in out.values())
    assert out["F1"]["status"] == "reproduced" and out["F7"]["status"] == "missing"
    assert all(v["rule"]["version"] == findings.RULES[k][-1].version for k, v in out.items())
    assert out["F7-RL"]["status"] == "reproduced"


def test_length_drift_reports_online_and_rl_runs_only():
    cmp = _compare({("online_dpo_oracle", "SFT", "Length"): "worse", ("rloo", "SFT", "Length"): "not resolved"})
    cmp.cache = {
        ("online_dpo_oracle", "SFT", "Length"): {"delta": -4.0, "ci95": [-5.0, -3.0]},
        ("rloo", "SFT", "Length"): {"delta": 0.5, "ci95": [-1.0, 2.0]},
    }
    runs = {
        "SFT": {"describe": {"length": {"value": 21.0}}},
        "online_dpo_oracle": {"_meta": {"method": "online_dpo"}},
        "rloo": {"_meta": {"method": "rloo"}},
        "dpo_povid": {"_meta": {"method": "dpo"}},
    }
    out = findings.length_drift(cmp, runs)
    assert set(out) == {"online_dpo_oracle", "rloo"}
    assert out["online_dpo_oracle"] == {
        "method": "online_dpo",
        "sft_tokens": 21.0,
        "delta_tokens": -4.0,
        "ci95": [-5.0, -3.0],
        "drift": "shorter",
    }
    assert out["rloo"]["drift"] == "none"


def test_unmeasurable_columns_decide_nothing_and_the_earlier_columns_rule_is_kept(spec):
    def rows(answers):
        return [
            {
                "item_id": f"p{i}",
                "suite": "pope_random",
                "scene_id": f"s{i // 2}",
                "label": "yes" if i % 2 else "no",
                "answer": a,
                "prompt": "is there a cup in the image ?",
            }
            for i, a in enumerate(answers)
        ]

    preds = {"SFT": [rows(["no", "no"] * 20)], "dpo_bdhs": [rows(["no", "yes"] * 20)]}
    cmp = findings.paired_compare(preds, [], spec, n_boot=50, unmeasurable={"POPE rand"})
    assert cmp("dpo_bdhs", "SFT", "POPE rand") == "not measurable"
    assert (
        cmp.columns_v1("dpo_bdhs", "SFT", "POPE rand") == "better" == cmp.pope_decides("dpo_bdhs", "SFT", "POPE rand")
    )


def _describe_rows(answers, scenes):
    return [
        {
            "item_id": f"{s.scene_id}:d",
            "suite": "describe",
            "scene_id": s.scene_id,
            "answer": a,
            "prompt": "describe the image .",
        }
        for s, a in zip(scenes, answers)
    ]


def test_image_sensitivity_flags_a_column_the_blind_model_does_as_well_on(spec, make_scene):
    """Hand-made: with the image the model names the scene's cup; blind it names a plate that is not there.
    CHAIR and recall depend on the image (measurable); a column where the blind answers score the same
    (POPE with identical answers) does not."""
    from study.report.measurable import image_sensitivity

    scenes = [make_scene([("cup", "white", "small", 0, 0)], scene_id=f"test-{i:06d}") for i in range(30)]
    seeing = _describe_rows(["there is a small white cup at the top left ."] * 30, scenes)
    blind = _describe_rows(["there is a small white plate at the top left ."] * 30, scenes)
    pope = [
        {
            "item_id": f"{s.scene_id}:p{k}",
            "suite": "pope_random",
            "scene_id": s.scene_id,
            "label": lab,
            "answer": "yes",
            "prompt": "is there a cup in the image ?",
        }
        for s in scenes
        for k, lab in enumerate(("yes", "no"))
    ]
    sens = image_sensitivity(seeing + pope, blind + pope, [s.to_dict() for s in scenes], spec, n_boot=50)
    assert sens["CHAIR_i"]["measurable"] and sens["Recall"]["measurable"]
    assert sens["CHAIR_i"]["delta"] == -1.0
    assert not sens["POPE rand"]["measurable"] and sens["POPE rand"]["delta"] == 0.0
    assert "QA halluc." not in sens  # no typed-QA items: no verdict either way


def test_paper_summary_holds_findings_drift_sensitivity_and_models():
    cmp = _compare({("dpo_bdhs", "SFT", "CHAIR_i"): "better"})
    cmp.image_sensitivity = {"CHAIR_i": {"delta": -0.1, "ci95": [-0.2, -0.05], "measurable": True}}
    runs = {"SFT": {}, **_rl_runs([True, True])}
    out = _paper_summary(cmp, runs, None, {"SFT"})
    keys = {"findings", "length_drift", "image_sensitivity", "models", "pope_not_measurable", "test"}
    assert set(out) == keys | {"draws", "draws_rule"} and out["draws"] is None  # a hand-made compare: no draws
    assert out["draws_rule"]["text"] == findings.RULES["DRAWS"][-1].text
    assert out["findings"]["F1"]["status"] == "reproduced" and out["image_sensitivity"] is cmp.image_sensitivity
    assert out["models"] == sorted(runs) and out["pope_not_measurable"] == ["SFT"] and out["length_drift"] == {}
    assert _paper_summary(_compare({}), {}, None, set())["image_sensitivity"] is None
