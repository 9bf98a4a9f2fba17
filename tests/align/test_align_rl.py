"""RL plumbing: GAE, KL-penalised rewards and PPO clipping on hand-made numbers; collapse / reward-hacking
flags; reward normalisation; short real RLOO (TRL) and PPO runs raise the judge's score."""

import numpy as np
import pytest
import torch

from study.align import rl, train
from study.model.generate import generate
from study.model.load import load_model


def test_gae_on_hand_numbers():
    # gamma = 1, lambda = 0.5; rewards (0, 0, 1), values (0.5, 0.4, 0.3):
    # delta2 = 1 - 0.3 = 0.7;  A2 = 0.7
    # delta1 = 0 + 0.3 - 0.4 = -0.1;  A1 = -0.1 + 0.5 * 0.7 = 0.25
    # delta0 = 0 + 0.4 - 0.5 = -0.1;  A0 = -0.1 + 0.5 * 0.25 = 0.025;  returns = A + V
    adv, ret = rl.gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.4, 0.3]]), torch.ones(1, 3), 1.0, 0.5)
    assert adv[0].tolist() == pytest.approx([0.025, 0.25, 0.7])
    assert ret[0].tolist() == pytest.approx([0.525, 0.65, 1.0])
    # a 2-token answer padded to 3: the value after its last token is 0, the padded step gets nothing
    # gamma = 0.9: delta1 = 1 + 0 - 0.4 = 0.6 = A1; delta0 = 0.9 * 0.4 - 0.5 = -0.14, A0 = -0.14 + 0.45 * 0.6 = 0.13
    adv, _ = rl.gae(
        torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.5, 0.4, 9.0]]), torch.tensor([[1, 1, 0]]), 0.9, 0.5
    )
    assert adv[0].tolist() == pytest.approx([-0.14 + 0.45 * 0.6, 0.6, 0.0])


def test_kl_penalised_rewards_put_the_score_on_the_last_answer_token():
    # kl_coef 0.1, log pi_old - log pi_ref = (0.5, -0.5, 0.2) on a 2-token answer (3rd is padding)
    r = rl.kl_penalised_rewards(
        torch.tensor([2.0]),
        torch.tensor([[-1.0, -2.0, -1.0]]),
        torch.tensor([[-1.5, -1.5, -1.2]]),
        torch.tensor([[1, 1, 0]]),
        0.1,
    )
    assert r[0].tolist() == pytest.approx([-0.05, 0.05 + 2.0, 0.0])


def test_ppo_loss_clips_on_hand_numbers():
    # ratios (1.5, 0.5, 1.1), advantages (1, 1, -1), eps = 0.2:
    # -A*r = (-1.5, -0.5, 1.1); -A*clip(r) = (-1.2, -0.8, 1.1); max -> (-1.2, -0.5, 1.1); mean = -0.2
    logp_old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    # value: V = 1.0, V_old = 0.5, R = 0 (eps_v 0.2): max((1-0)^2, (0.7-0)^2) = 1 -> 0.5 * 1 on each token
    v, v_old, ret = torch.ones(1, 3), torch.full((1, 3), 0.5), torch.zeros(1, 3)
    out = rl.ppo_loss(logp, logp_old, adv, v, v_old, ret, torch.ones(1, 3), clip=0.2, clip_v=0.2, vf_coef=0.1)
    assert float(out["pg_loss"]) == pytest.approx(-0.2)
    assert float(out["clipfrac"]) == pytest.approx(1 / 3)  # only the first token was clipped
    assert float(out["vf_loss"]) == pytest.approx(0.5)
    assert float(out["loss"]) == pytest.approx(-0.2 + 0.1 * 0.5)
    # a masked token does not count
    out2 = rl.ppo_loss(logp, logp_old, adv, v, v_old, ret, torch.tensor([[1, 1, 0]]), clip=0.2, clip_v=0.2, vf_coef=0.1)
    assert float(out2["pg_loss"]) == pytest.approx((-1.2 - 0.5) / 2)


def test_masked_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    w = rl.masked_whiten(x, m)
    assert float(rl.masked_mean(w, m)) == pytest.approx(0, abs=1e-6)
    assert float(rl.masked_mean(w**2, m)) == pytest.approx(1, abs=1e-4) and float(w[0, 3]) == 0


def test_collapse_and_reward_hacking_are_flagged():
    mon = rl.CollapseMonitor(min_tokens=2.0, length_ratio=0.25)
    for step, (ln, rw, au) in enumerate([(8, 0.0, 1.0), (7, 0.3, 0.8), (6, 0.6, 0.5), (5, 0.9, 0.2)]):
        assert mon.update(step, ln, rw, au) is None
    rep = mon.report()
    assert not rep["collapsed"] and rep["reward_hacking"] and rep["reward_delta"] > 0 > rep["audit_delta"]
    assert "collapse_min_tokens" in mon.update(4, 1.5)
    rep = mon.report()
    assert rep["collapsed"] and rep["collapse_step"] == 4 and rep["length_last"] == 1.5
    ratio = rl.CollapseMonitor(min_tokens=0.0, length_ratio=0.25)
    ratio.update(0, 40.0)
    assert "0.25 x its start value" in ratio.update(1, 9.0)
    honest = rl.CollapseMonitor(2.0, 0.25)
    for s, (rw, au) in enumerate([(0, 0), (1, 1), (2, 2)]):
        honest.update(s, 8.0, rw, au)
    assert not honest.report()["reward_hacking"]


class ListJudge:
    def score(self, scene, prompt, answer):
        return float(len(answer.split()))


def test_reward_scorer_normalises_with_precomputed_stats_and_trl_func_logs_audit():
    scorer = rl.RewardScorer(ListJudge(), {"s": None}, mean=2.0, std=4.0, audit=ListJudge())
    assert scorer(["s", "s"], ["q", "q"], ["a b", "a b c d e f"]) == [0.0, 1.0]
    logged = {}
    fn = rl.trl_reward_func(scorer)
    out = fn(
        prompts=[[], []],
        completions=[[{"role": "assistant", "content": "a b"}]] * 2,
        scene_id=["s", "s"],
        prompt_text=["q", "q"],
        log_metric=lambda k, v: logged.setdefault(k, v),
        trainer_state=None,
    )
    assert out == [0.0, 0.0] and logged == {"reward_raw": 2.0, "audit/oracle_score": 2.0}


def _mean_score(model, processor, world, rows, judge):
    outs = generate(
        model.eval(),
        processor,
        [world.image(r["scene_id"]) for r in rows] * 4,
        [r["prompt"] for r in rows] * 4,
        do_sample=True,
        max_new_tokens=8,
        seed=123,
    )
    return float(np.mean([judge.score(None, None, o) for o in outs]))


@pytest.mark.parametrize("method,lora", [("rloo", False), ("rloo", True), ("ppo", False), ("ppo", True)])
def test_rl_run_raises_the_judge_score(method, lora, fast, make_model, processor, rows, world, good_words, tmp_path):
    data = [{"prompt": r["prompt"], "scene_id": r["scene_id"]} for r in rows]
    params = fast(
        method,
        lora=lora,
        epochs=3,
        batch_size=8,
        **({"ppo_minibatch": 8} if method == "ppo" else {}),
        kl_coef=0.05,
        reward_norm_prompts=8,
        learning_rate=3e-2 if lora else 1e-2,
    )
    m = train(
        method,
        policy=(make_model(), processor),
        world=world,
        data=data,
        params=params,
        out_dir=tmp_path / "out",
        live_dir=tmp_path / "live",
        annotator=good_words,
    )
    assert m["reward_std"] > 0 and m["reward_norm_samples"] == 8 * 4  # stats from k samples on 8 prompts
    assert not m["collapse"]["collapsed"] and m["collapse"]["length_first"] > 0
    trained, _ = load_model(tmp_path / "out")
    before = _mean_score(make_model(), processor, world, rows, good_words)
    after = _mean_score(trained, processor, world, rows, good_words)
    assert after > before + 0.1
    assert abs(m["kl_last"]) > 1e-4  # the policy moved away from the frozen reference
    assert (tmp_path / "live" / "metrics.json").is_file()


def test_killed_ppo_run_resumes_after_last_batch(fast, make_model, processor, rows, world, good_words, tmp_path):
    class Dies:
        calls = 0

        def score(self, scene, prompt, answer):
            Dies.calls += 1
            if Dies.calls > 8 * 4 + 8:  # normalisation samples + the first batch, then the kill
                raise KeyboardInterrupt("simulated kill")
            return good_words.score(scene, prompt, answer)

    data = [{"prompt": r["prompt"], "scene_id": r["scene_id"]} for r in rows]
    params = fast("ppo", epochs=1, batch_size=8, ppo_minibatch=8, reward_norm_prompts=8)
    with pytest.raises(KeyboardInterrupt):
        train(
            "ppo",
            policy=(make_model(), processor),
            world=world,
            data=data,
            params=params,
            out_dir=tmp_path / "o",
            annotator=Dies(),
        )
    assert not (tmp_path / "o").exists() and (tmp_path / "o.work" / "state" / "loop.json").is_file()
    m = train(
        "ppo",
        policy=(make_model(), processor),
        world=world,
        data=data,
        params=params,
        out_dir=tmp_path / "o",
        annotator=good_words,
    )
    assert m["resumed_at_batch"] == 1 and [h["batch"] for h in m["history"]] == [0, 1]
    assert not (tmp_path / "o.work").exists()
