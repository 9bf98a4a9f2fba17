"""Each pair loss against a hand-computed value, computed by TRL's own DPOTrainer code on given log-probs;
Avg-DPO's Eq. 5; and TRL's loss on a real batch == the plain-PyTorch loss (study.align.losses)."""

import math
from types import SimpleNamespace

import pytest
import torch
from trl.trainer.dpo_trainer import DataCollatorForVisionPreference
from trl.trainer.utils import add_fused_lm_head

from study.align import common
from study.align import losses as Lo
from study.align.avg_dpo import AvgDPOTrainer
from study.align.offline import make_dpo_trainer
from study.config import align_params

# Two pairs, sequence length 6 (2 prompt tokens). Completion tokens: chosen1 = 2, chosen2 = 3,
# rejected1 = 4, rejected2 = 3. Batch rows are [chosen1, chosen2, rejected1, rejected2] (TRL's layout).
COMPLETION = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]])
# summed log-probs: policy chosen1 -1, chosen2 -2, rejected1 -3, rejected2 -2; reference all -2
POLICY_SUMS = torch.tensor([-1.0, -2.0, -3.0, -2.0])
REF_SUMS = torch.tensor([-2.0, -2.0, -2.0, -2.0])
# => margins h1 = (-1 + 2) - (-3 + 2) = 2, h2 = 0


def _per_token(sums, completion):
    m = completion[:, 1:].float()  # the fused head returns log-probs at the shifted label positions only
    return m * (sums / m.sum(1))[:, None]


class FakeLM:
    """Stands in for the fused-head forward: returns the log-probs carried in the batch."""

    def __init__(self, key):
        self.key = key

    def __call__(self, **kw):
        lp = kw[self.key]
        z = torch.zeros_like(lp)
        return SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool())


def _batch(rows_idx):
    comp = COMPLETION[rows_idx]
    return {
        "input_ids": torch.zeros_like(comp),
        "attention_mask": torch.ones_like(comp),
        "completion_mask": comp,
        "fake_lp": _per_token(POLICY_SUMS[rows_idx], comp),
        "fake_ref_lp": _per_token(REF_SUMS[rows_idx], comp),
    }


@pytest.fixture(scope="module")
def trainer(make_model, processor, rows, world, tmp_path_factory):
    p = align_params("dpo", lora=False, beta=0.5, batch_size=2)
    ds = common.preference_dataset(rows[:4], world, with_rejected_2=True)
    t = make_dpo_trainer(
        make_model(),
        processor,
        ds,
        p,
        tmp_path_factory.mktemp("w"),
        0,
        trainer_cls=AvgDPOTrainer,
        trainer_kwargs={"gamma": 0.25},
    )
    return t


def _trl_loss(trainer, loss_type, beta, batch):
    trainer.loss_types, trainer.loss_weights, trainer.beta = [loss_type], [1.0], beta
    real_ref = trainer.ref_model
    trainer.ref_model = FakeLM("fake_ref_lp")
    try:
        return float(trainer._compute_loss(FakeLM("fake_lp"), batch, False))
    finally:
        trainer.ref_model = real_ref


@pytest.mark.parametrize(
    "loss_type,beta,expected",
    [
        # DPO: mean(-log sigma(0.5*2), -log sigma(0)) = mean(log(1 + e^-1), log 2)
        ("sigmoid", 0.5, (math.log(1 + math.exp(-1)) + math.log(2)) / 2),  # 0.503204
        # SLiC hinge: mean(max(0, 1 - 0.25*2), max(0, 1 - 0)) = mean(0.5, 1)
        ("hinge", 0.25, 0.75),
        # IPO, length-normalised: pair1 h = 1/2 - (-1)/4 = 0.75 -> (0.75 - 1)^2 = 0.0625; pair2 (0 - 1)^2 = 1
        ("ipo", 0.5, (0.0625 + 1.0) / 2),
    ],
)
def test_trl_pair_losses_match_hand_values(trainer, loss_type, beta, expected):
    got = _trl_loss(trainer, loss_type, beta, _batch([0, 1, 2, 3]))
    assert got == pytest.approx(expected, abs=1e-6)
    # the plain-PyTorch reference agrees on the same log-probs
    pc, pr = POLICY_SUMS.chunk(2)
    rc, rr = REF_SUMS.chunk(2)
    n = COMPLETION.sum(1).float()
    plain = Lo.pair_loss(loss_type, pc, pr, rc, rr, beta, *n.chunk(2)).mean()
    assert float(plain) == pytest.approx(expected, abs=1e-6)


def test_ipo_unnormalised_form_differs():
    # the paper's (h - 1/(2 beta))^2 on pair 1: (2 - 1)^2 = 1, not TRL's 0.0625
    v = Lo.ipo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5, normalise=False
    )
    assert float(v) == pytest.approx(1.0)


def test_avg_dpo_is_gamma_weighted_average_of_trl_losses(trainer):
    trainer.loss_types, trainer.loss_weights, trainer.beta = ["sigmoid"], [1.0], 0.5
    real_ref = trainer.ref_model
    trainer.ref_model = FakeLM("fake_ref_lp")
    try:
        # pair_a = (chosen1, rejected1): h = 2; pair_b = (chosen2, rejected2): h = 0
        loss = trainer.compute_loss(FakeLM("fake_lp"), {"pair_a": _batch([0, 2]), "pair_b": _batch([1, 3])})
    finally:
        trainer.ref_model = real_ref
    # Eq. 5 with gamma = 0.25: 0.25 * log(1 + e^-1) + 0.75 * log 2 = 0.598176
    assert trainer.gamma == 0.25
    assert float(loss) == pytest.approx(0.25 * math.log(1 + math.exp(-1)) + 0.75 * math.log(2), abs=1e-6)
    assert float(Lo.avg_dpo_loss(torch.tensor(1.0), torch.tensor(3.0), 0.25)) == pytest.approx(2.5)


def test_avg_collator_pairs_share_chosen_and_differ_in_rejected(trainer, rows):
    ex = [trainer.train_dataset[i] for i in range(2)]
    out = trainer.data_collator(ex)
    a, b = out["pair_a"], out["pair_b"]
    tok = trainer.processing_class.tokenizer

    def completions(batch):
        ids, m = batch["input_ids"], batch["completion_mask"].bool()
        return [tok.decode(ids[i][m[i]], skip_special_tokens=True).strip() for i in range(ids.shape[0])]

    ca, cb = completions(a), completions(b)
    assert ca[:2] == cb[:2] == [rows[0]["chosen"], rows[1]["chosen"]]
    assert ca[2:] == [rows[0]["rejected"], rows[1]["rejected"]]
    assert cb[2:] == [rows[0]["rejected_2"], rows[1]["rejected_2"]]


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_trl_loss_on_real_batch_equals_plain_pytorch(trainer, loss_type, rows, world):
    model = trainer.model
    ref = common.frozen_copy(model)
    with torch.no_grad():  # a reference that differs from the policy, so the margin is not 0
        for q in ref.parameters():
            q.add_(0.05 * torch.randn_like(q))
    outs = ("log_probs", "entropy", "mean_logits", "is_top1")
    add_fused_lm_head(model, outputs=outs)  # frozen_copy removed the trainer's patch; put it back
    add_fused_lm_head(ref, outputs=outs)
    ex = [trainer.train_dataset[i] for i in range(3)]
    batch = DataCollatorForVisionPreference(processor=trainer.processing_class)(
        [{k: e[k] for k in ("prompt", "chosen", "rejected", "images")} for e in ex]
    )
    trainer.loss_types, trainer.loss_weights, trainer.beta = [loss_type], [1.0], 0.3
    real_ref = trainer.ref_model
    trainer.ref_model = ref
    try:
        with torch.no_grad():
            trl = float(trainer._compute_loss(model, dict(batch), False))
    finally:
        trainer.ref_model = real_ref
    plain = float(Lo.plain_pair_loss(model, ref, dict(batch), 0.3, loss_type).detach())
    assert trl == pytest.approx(plain, rel=1e-4, abs=1e-5)
