"""Knobs reach the rho_th sweep: every BDHS knob of the ``bdhs`` section but rho_th (and N_BDHS = 1 for
the first-iteration run) is the one the sweep samples with (was: temperature, max_new_tokens and
batch_size silently took BDHSParams' defaults)."""

from study.bdhs import sweep as bdhs_sweep
from study.bdhs.sampler import BDHSResult
from study.bdhs.stage import bdhs_params
from study.config import load_section


def test_the_sweep_samples_with_the_sections_knobs(tiny, pretrain_world, spec, monkeypatch):
    seen = []

    def fake_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False):
        seen.append(params)
        return [BDHSResult(c, 1, 0.5, True, 6) for c in chosen]

    monkeypatch.setattr(bdhs_sweep, "bdhs_sample", fake_sample)
    b = load_section(
        "bdhs", rho_th=0.9, eps_s=0.8, n_bdhs=3, noise_steps=7, temperature=0.7, max_new_tokens=11, batch_size=5
    )
    model, proc = tiny
    table = bdhs_sweep.sweep(
        model, proc, pretrain_world, spec, [0.0, 0.5], bdhs_params(b), split="val", n=4, encoder=object(), seed=0
    )
    assert list(table["rho_th"]) == [0.0, 0.5] and list(table["noise_steps"]) == [7, 7]
    assert [(q.rho_th, q.n_bdhs) for q in seen] == [(0.0, 1), (0.0, 3), (0.5, 1), (0.5, 3)]
    assert {(q.eps_s, q.noise_steps, q.temperature, q.max_new_tokens, q.batch_size) for q in seen} == {
        (0.8, 7, 0.7, 11, 5)
    }
