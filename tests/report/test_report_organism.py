"""The organism stage's tables and verdict read metrics/organism.json faithfully."""

from study.eval.gates import check_gates
from study.report.organism import gate_table, verdict


def _metrics(values):
    gates = check_gates(values)
    for g in gates.values():
        g["test_value"] = None
    counts = {"pass": 0, "fail": 0, "not measured": 0}
    for g in gates.values():
        counts[g["status"]] += 1
    return {"gates": gates, "summary": counts, "gate_split": "val"}


def test_gate_table_shows_each_gate_and_does_not_round_a_failure_onto_its_threshold():
    m = _metrics({"image_gain_adversarial": 0.24994, "recall": 0.714})
    t = gate_table(m)
    assert t.loc["image_gain_adversarial", "val"] == "0.2499"
    assert t.loc["image_gain_adversarial", "status"] == "fail"
    assert t.loc["recall", "val"] == "0.714" and t.loc["recall", "status"] == "pass"
    assert t.loc["auroc_random", "val"] == "—" and t.loc["auroc_random", "status"] == "not measured"
    assert len(t) == len(m["gates"])


def test_verdict_names_failing_and_unmeasured_gates():
    m = _metrics({"image_gain_adversarial": 0.2, "recall": 0.8})
    text = verdict(m)
    assert text.startswith(f"1 of {len(m['gates'])} validity gates pass on val")
    assert "Failing: image_gain_adversarial" in text and "not valid" in text
    assert "Not measured:" in text and "auroc_random" in text


def test_auroc_figure_draws_an_interval_that_does_not_contain_its_estimate():
    """A percentile-bootstrap interval can miss its point estimate (small samples); the figure draws it."""
    import matplotlib

    matplotlib.use("Agg")
    from study.report.organism import POPE, auroc_figure

    cell = {"auroc": {"value": 0.50, "ci95": [0.52, 0.70]}, "auroc_masked": {"value": 0.5, "ci95": [0.4, 0.6]}}
    fig = auroc_figure({"gate_split": "val", "reports": {"val": {f"pope_{t}": cell for t in POPE}}})
    ax = fig.axes[0]
    spans = sorted(tuple(seg[:, 1]) for coll in ax.collections for seg in coll.get_segments() if seg[0, 0] == seg[1, 0])
    assert spans.count((0.52, 0.70)) == len(POPE)  # the whisker is the interval itself
    assert spans.count((0.4, 0.6)) == len(POPE)


def test_sources_table_has_a_row_per_seed_with_the_cross_counts():
    from study.report.organism import sources_table

    d = {
        "hallucinated": 10,
        "context_share": 0.6,
        "by_kind_and_context": {"misread/off_context": 2, "unplaced/in_context": 6, "unplaced/off_context": 2},
        "unplaced_echo": {"in_context": 1, "off_context": 2},
    }
    t = sources_table({"sources": {"0": d, "1": {**d, "hallucinated": 7}}})
    assert list(t.index) == ["0", "1"] and t.loc["1", "hallucinated"] == 7
    assert t.loc["0", "list in context"] == 6 and t.loc["0", "misread in context"] == 0
    assert t.loc["0", "list echoes in / off context"] == "1 / 2" and t.loc["0", "context share"] == "0.600"
    assert sources_table({}).empty  # a metrics file written before the instrument


def test_noise_table_marks_verdicts_within_noise_per_seed():
    from study.report.organism import noise_table

    def row(status, v, lo, hi, margin):
        return {"value": v, "ci95": [lo, hi], "status": status, "margin": margin}

    metrics = {
        "gate_noise": {
            "0": {
                "context_share": row("fail", 0.551, 0.476, 0.620, "within noise"),
                "recall": row("pass", 0.955, 0.940, 0.969, "clear"),
                "probe_gain": {"value": 0.1, "ci95": None, "status": "pass", "margin": "no interval"},
            },
            "1": {"context_share": row("fail", 0.50, 0.45, 0.55, "clear")},
        }
    }
    t = noise_table(metrics)
    assert list(t.columns) == ["SFT seed 0", "SFT seed 1"]
    assert t.loc["context_share", "SFT seed 0"] == "fail ?  0.551 [0.476, 0.620]"
    assert t.loc["context_share", "SFT seed 1"] == "fail  0.500 [0.450, 0.550]"
    assert "probe_gain" not in t.index  # no interval, no row
    assert noise_table({}).empty  # a metrics file written before the instrument
