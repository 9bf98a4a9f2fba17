"""Online-DPO, Online-BDHS and Mixed-DPO: the annotator's preferred answer is chosen (ties skipped),
Mixed-DPO's offline share is p, pairs come from the CURRENT policy, short real runs improve the judge's
score / the margin, and a killed run resumes after its last finished round."""

import numpy as np
import pytest
import torch

from study.align import common, online, train
from study.model.generate import generate
from study.model.load import load_model


class PairwiseJudge:
    """A judge whose pairwise verdict contradicts its score (like a noisy oracle's flipped pair)."""

    def score(self, scene, prompt, answer):
        return float(len(answer.split()))

    def prefer_from_scores(self, scene, prompt, a, b, sa, sb):
        return 0 if sa < sb else 1  # prefers the SHORTER answer although its score is lower

    def prefer(self, scene, prompt, a, b):
        return self.prefer_from_scores(scene, prompt, a, b, self.score(scene, prompt, a), self.score(scene, prompt, b))


class PreferOnly:
    """A purely pairwise judge: constant score, only its ``prefer`` says anything."""

    def score(self, scene, prompt, answer):
        return 0.0

    def prefer(self, scene, prompt, a, b):
        return 0 if "good" in a else 1


def test_annotator_choice_becomes_chosen_and_ties_are_skipped(good_words):
    a = ["a b c", "same answer", "x", "cup cup"]
    b = ["a b", "same answer", "y", "cup cup"]
    v = online.annotate_pairs(PairwiseJudge(), [None] * 4, ["q"] * 4, a, b)
    assert v[0] == {"chosen": "a b", "rejected": "a b c", "score_chosen": 2.0, "score_rejected": 3.0}
    assert v[1] is None and v[3] is None  # identical answers
    assert v[2] is None  # equal scores (1 word each) -> tie, skipped
    stats = {}
    gw = sorted(good_words.good)[5]
    bw = next(w for w in sorted(good_words.good | {"cup", "is", "dog"}) if w not in good_words.good)
    g = online.annotate_pairs(good_words, [None] * 2, ["q"] * 2, [f"{gw} {gw}", bw], [bw, f"{gw} {gw}"], stats)
    assert [x["chosen"] for x in g] == [f"{gw} {gw}"] * 2 and [x["rejected"] for x in g] == [bw] * 2
    assert stats["score_samples"] == pytest.approx(0.5)
    p = online.annotate_pairs(
        PreferOnly(), [None] * 3, ["q"] * 3, ["bad one", "good one", "same"], ["good two", "bad two", "same"]
    )
    assert [x and x["chosen"] for x in p] == ["good two", "good one", None]  # pairwise: only identical ties


def test_mixed_assignment_rate_is_p():
    for p in (0.0, 0.3, 0.5, 1.0):
        a = online.mixed_assignment(20000, p, np.random.default_rng(1))
        assert abs(a.mean() - p) < 0.012  # 3.5 sigma at p = 0.5


def test_rounds_cover_each_epoch_once():
    n, size = 10, 4
    stream = [i for r in range(online.n_rounds(n, size, 2.0)) for i in online.round_indices(n, size, r, seed=3)]
    assert online.n_rounds(n, size, 2.0) == 5 and len(stream) == 20
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10] != stream[10:]  # reshuffled per epoch


def _fingerprint(model):
    return float(sum(q.detach().double().sum() for q in model.parameters() if q.requires_grad))


def _mean_score(model, processor, world, rows, judge, n=4):
    outs = generate(
        model.eval(),
        processor,
        [world.image(r["scene_id"]) for r in rows] * n,
        [r["prompt"] for r in rows] * n,
        do_sample=True,
        max_new_tokens=8,
        seed=123,
    )
    return float(np.mean([judge.score(None, None, o) for o in outs]))


def test_online_dpo_samples_current_policy_and_improves_judge_score(
    fast, make_model, processor, rows, world, good_words, tmp_path
):
    seen = []

    def spy(model, processor, images, prompts, p, seed):
        seen.append(_fingerprint(model))
        return online.sample_pairs(model, processor, images, prompts, p, seed)

    data = [{"prompt": r["prompt"], "scene_id": r["scene_id"]} for r in rows]  # prompts only
    m = train(
        "online_dpo",
        policy=(make_model(), processor),
        world=world,
        data=data,
        params=fast("online_dpo", epochs=2, round_size=8, batch_size=4, temperature=1.0),
        out_dir=tmp_path / "out",
        live_dir=tmp_path / "live",
        annotator=good_words,
        sample_fn=spy,
    )
    assert m["rounds"] == 4 and len(seen) == 4 and len(set(seen)) == 4  # a new policy every round
    assert m["pairs"] + m["ties"] == 4 * 8
    for h in m["history"]:  # chosen = the judge's preferred answer
        if "score_chosen" in h:
            assert h["score_chosen"] > h["score_rejected"]
    trained, _ = load_model(tmp_path / "out")
    before = _mean_score(make_model(), processor, world, rows, good_words)
    after = _mean_score(trained, processor, world, rows, good_words)
    assert after > before + 0.1
    assert (tmp_path / "live" / "plots" / "metrics" / "round" / "pairs.tsv").is_file()


def test_mixed_dpo_draws_offline_pairs_at_rate_p(fast, make_model, processor, rows, world, good_words, tmp_path):
    m = train(
        "mixed_dpo",
        policy=(make_model(), processor),
        world=world,
        data=rows[:8],
        params=fast("mixed_dpo", p=0.5, epochs=4, round_size=8),
        out_dir=tmp_path / "out",
        annotator=good_words,
    )
    hist = m["history"]
    assert sum(h["drawn"] for h in hist) == 32
    for h in hist:  # offline pairs never tie; online pairs = the rest minus ties
        assert h["offline_pairs"] == h["drawn_offline"]
        assert h["pairs"] == h["drawn_offline"] + h["online_pairs"] - h["ties"]
    assert 0.2 < m["offline_share_drawn"] < 0.8  # 32 Bernoulli(0.5) draws
    # the p it trains with: skipped ties (online only) raise the offline share above the drawn one
    trained = sum(h["offline_pairs"] for h in hist) / sum(h["pairs"] for h in hist)
    assert m["offline_share_trained"] == trained and m["pairs"] == sum(h["pairs"] for h in hist)
    if sum(h["ties"] for h in hist):
        assert m["offline_share_trained"] > m["offline_share_drawn"]
    assert m["train/rewards/margins_last"] > 0


def test_online_bdhs_regenerates_from_current_policy_every_regen_every_rounds(
    fast, make_model, processor, rows, world, tmp_path
):
    calls = []

    def fake_bdhs(model, processor, images, prompts, chosen, params, encoder, seed):
        calls.append((_fingerprint(model), len(prompts)))
        return [c.replace("is", "are", 1) + " there is a dog ." for c in chosen]

    data = rows[:8]
    m = train(
        "online_bdhs",
        policy=(make_model(), processor),
        world=world,
        data=data,
        params=fast("online_bdhs", epochs=3, round_size=4, regen_every=2),
        out_dir=tmp_path / "out",
        bdhs_fn=fake_bdhs,
    )
    assert m["rounds"] == 6 and len(calls) == 3  # rounds 0, 2, 4
    assert len({fp for fp, _ in calls}) == 3  # the policy had changed at each regeneration
    assert all(n <= 8 for _, n in calls)
    assert [h.get("regenerated", 0) > 0 for h in m["history"]] == [True, False] * 3
    assert m["train/loss_last"] < m["train/loss_first"] and m["train/rewards/margins_last"] > 0


def test_online_bdhs_with_real_sampler_and_external_rejected(
    fast, make_model, processor, rows, world, encoder, tmp_path
):
    m = train(
        "online_bdhs",
        policy=(make_model(), processor),
        world=world,
        data=rows[:4],
        params=fast("online_bdhs", epochs=2, round_size=4, bdhs_n=2, bdhs_with_external=True, gamma=0.5),
        out_dir=tmp_path / "out",
        encoder=encoder,
    )
    assert m["rounds"] == 2 and m["pairs"] == 8
    assert m["train/rewards/margins_last"] > 0  # Avg-DPO on (GT, external y-) and (GT, BDHS y~-)
    trained, proc = load_model(tmp_path / "out")
    d = common.implicit_rewards(
        trained,
        make_model().eval(),
        proc,
        [world.image(r["scene_id"]) for r in rows[:4]],
        [r["prompt"] for r in rows[:4]],
        [r["chosen"] for r in rows[:4]],
        [r["rejected"] for r in rows[:4]],
        beta=0.1,
    )
    assert d["reward_margin_mean"] > 0


def test_killed_online_run_resumes_after_last_round(fast, make_model, processor, rows, world, good_words, tmp_path):
    class Boom(Exception):
        pass

    n = {"calls": 0}

    def dies_in_round_2(model, processor, images, prompts, p, seed):
        n["calls"] += 1
        if n["calls"] == 3:
            raise Boom()
        return online.sample_pairs(model, processor, images, prompts, p, seed)

    params = fast("online_dpo", epochs=2, round_size=4)
    with pytest.raises(Boom):
        train(
            "online_dpo",
            policy=(make_model(), processor),
            world=world,
            data=rows[:8],
            params=params,
            out_dir=tmp_path / "out",
            annotator=good_words,
            sample_fn=dies_in_round_2,
        )
    assert not (tmp_path / "out").exists() and (tmp_path / "out.work" / "state" / "loop.json").is_file()
    m = train(
        "online_dpo",
        policy=(make_model(), processor),
        world=world,
        data=rows[:8],
        params=params,
        out_dir=tmp_path / "out",
        annotator=good_words,
    )
    assert m["resumed_at_round"] == 2 and [h["round"] for h in m["history"]] == [0, 1, 2, 3]
    assert (tmp_path / "out" / "config.json").is_file() and not (tmp_path / "out.work").exists()
    # resuming restored the trained weights: the result differs from a fresh model
    trained, _ = load_model(tmp_path / "out")
    assert not torch.equal(
        trained.state_dict()["model.multi_modal_projector.linear_1.weight"],
        make_model().state_dict()["model.multi_modal_projector.linear_1.weight"],
    )


def test_killed_online_run_starts_clean_under_other_params(
    fast, make_model, processor, rows, world, good_words, tmp_path, capsys
):
    calls = {"n": 0}

    def dies_in_round_2(model, processor, images, prompts, p, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return online.sample_pairs(model, processor, images, prompts, p, seed)

    with pytest.raises(KeyboardInterrupt):
        train(
            "online_dpo",
            policy=(make_model(), processor),
            world=world,
            data=rows[:8],
            params=fast("online_dpo", epochs=2, round_size=4),
            out_dir=tmp_path / "out",
            annotator=good_words,
            sample_fn=dies_in_round_2,
        )
    assert (tmp_path / "out.work" / "state" / "loop.json").is_file()
    capsys.readouterr()
    m = train(
        "online_dpo",
        policy=(make_model(), processor),
        world=world,
        data=rows[:8],
        params=fast("online_dpo", epochs=2, round_size=4, beta=0.5),
        out_dir=tmp_path / "out",
        annotator=good_words,
    )
    assert "written with other params.beta; starting clean" in capsys.readouterr().out
    assert m["resumed_at_round"] is None and [h["round"] for h in m["history"]] == [0, 1, 2, 3]


def test_project_annotators_plug_in(fast, rows, world):
    from study.config import align_params

    oracle = common.make_annotator(align_params("online_dpo", annotator="oracle"), world)
    noisy = common.make_annotator(align_params("online_dpo", annotator="noisy_oracle", annotator_accuracy=1.0), world)
    scenes = common.scene_lookup(world)
    sc = [scenes[r["scene_id"]] for r in rows]
    for judge in (oracle, noisy):
        v = online.annotate_pairs(
            judge, sc, [r["prompt"] for r in rows], [r["rejected"] for r in rows], [r["chosen"] for r in rows]
        )
        decided = [x for x in v if x is not None]
        assert decided and all(x["chosen"] == r["chosen"] for x, r in zip(v, rows) if x is not None)
