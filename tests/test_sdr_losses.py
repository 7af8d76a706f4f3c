"""SDR's loss terms (issue 17): L_MI as an InfoNCE bound that trains TRFI and every branch (and the earlier KL
variant), L_con, the ablations training one step, and inference over clean or perturbed views."""

from __future__ import annotations

import math

import pytest
import torch

from fakescope.models import create_model, resolve_model_config
from fakescope.models.sdr import TPAConfig, fixed_tpa, fixed_tpa_params, infonce_mi, mi_loss, supcon_loss


def clips(b: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 8, 3, 32, 32), dtype=torch.uint8, generator=g)


def grads_of(model, term: str, x, y) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    out = model.compute_loss(x, y)
    out.terms[term].backward()
    return {n: (0.0 if p.grad is None else float(p.grad.abs().sum())) for n, p in model.named_parameters()}


def reached(g: dict[str, float], prefix: str) -> bool:
    return any(v > 0 for n, v in g.items() if n.startswith(prefix))


# ----------------------------------------------------------------- InfoNCE
def test_each_loss_term_is_finite_and_sends_gradient_where_it_should():
    torch.manual_seed(0)
    m = create_model("sdr_tiny").train()
    assert m.cfg.mi_estimator == "infonce" and m.branch_heads is None and m.mi_critic is not None
    x, y = m.normalize(clips()), torch.tensor([0, 1, 0, 1])
    torch.manual_seed(3)
    out = m.compute_loss(x, y)
    assert set(out.terms) == {"bce", "mi", "mi_nats", "con"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in out.terms.values())
    torch.testing.assert_close(out.total, out.terms["bce"] + 0.1 * out.terms["mi"] + 0.1 * out.terms["con"])
    # the logged estimate is the bound log(B) - L_MI, below its cap
    torch.testing.assert_close(out.terms["mi_nats"], math.log(4) - out.terms["mi"].detach())
    bce, mi, con = (grads_of(m, t, x, y) for t in ("bce", "mi", "con"))
    assert all(reached(bce, p) for p in ("encoder.stem", "trfi.", "head.")) and not reached(bce, "mi_critic.")
    # L_MI trains TRFI's weighting network, the encoder and the critic; not the temporal transformer
    assert all(reached(mi, p) for p in ("encoder.stem", "trfi.", "mi_critic.")), mi
    assert not reached(mi, "head.") and not reached(mi, "projector.")
    assert all(reached(con, p) for p in ("encoder.stem", "projector.")) and not reached(con, "trfi.")


def test_mi_gradient_reaches_every_branch():
    torch.manual_seed(0)
    x, y = None, torch.tensor([0, 1, 0, 1])
    # separate encoders: L_MI alone moves each branch's encoder
    sep = create_model("sdr_tiny", shared_encoder=False, branches=["blur", "color", "noise"]).train()
    x = sep.normalize(clips())
    g = grads_of(sep, "mi", x, y)
    for k in range(3):
        assert reached(g, f"encoders.{k}.stem"), f"branch {k}'s encoder gets no L_MI gradient"
    assert reached(g, "trfi.")
    # shared encoder: each branch's features z_k get a gradient from L_MI
    m = create_model("sdr_tiny").train()
    kept: list[torch.Tensor] = []
    real = m._branch_tokens

    def keep(views):
        feats = real(views)
        for f in feats:
            f.retain_grad()
        kept.extend(feats)
        return feats

    m._branch_tokens = keep
    torch.manual_seed(3)
    m.compute_loss(x, y).terms["mi"].backward()
    assert len(kept) == 4 and all(f.grad is not None and f.grad.abs().sum() > 0 for f in kept)


def test_kl_variant_is_kept_and_sends_no_gradient_to_trfi():
    torch.manual_seed(0)
    m = create_model("sdr_tiny", mi_estimator="kl").train()
    assert m.mi_critic is None and len(m.branch_heads) == 4
    x, y = m.normalize(clips()), torch.tensor([0, 1, 0, 1])
    out = m.compute_loss(x, y)
    assert set(out.terms) == {"bce", "mi", "con"}
    mi = grads_of(m, "mi", x, y)
    # the fused prediction is its detached target: only the branch heads and the encoder learn from it
    assert reached(mi, "encoder.stem") and not reached(mi, "trfi.") and not reached(mi, "head.")
    for k in range(4):
        assert reached(mi, f"branch_heads.{k}."), f"branch head {k} gets no L_MI gradient"
    # the estimator changes only the loss modules: encoder, TRFI and temporal transformer start the same
    torch.manual_seed(0)
    kl = create_model("sdr_tiny", mi_estimator="kl").state_dict()
    torch.manual_seed(0)
    default = create_model("sdr_tiny").state_dict()
    core = [k for k in default if k.startswith(("encoder.", "trfi.", "head."))]
    assert core and all(torch.equal(default[k], kl[k]) for k in core)


def test_infonce_is_a_valid_bound_on_correlated_gaussians():
    # a and b: 4-d standard Gaussians with per-dimension correlation rho, I(a; b) = -d/2 log(1 - rho^2) nats
    n, d = 256, 4
    g = torch.Generator().manual_seed(0)
    estimates = []
    for rho in (0.0, 0.3, 0.6, 0.9, 0.99):
        vals = []
        for _ in range(6):
            a, e = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
            b = rho * a + math.sqrt(1 - rho ** 2) * e
            loss, est = infonce_mi(a, b, tau=0.5)
            assert float(est) <= math.log(n) + 1e-6 and float(loss) >= 0  # the log(N) cap holds on every batch
            vals.append(float(est))
        mean = sum(vals) / len(vals)
        true_mi = -d / 2 * math.log(1 - rho ** 2)
        assert mean <= min(true_mi, math.log(n)) + 0.05, (rho, mean, true_mi)  # a lower bound
        estimates.append(mean)
    assert all(b > a for a, b in zip(estimates, estimates[1:])), estimates  # grows with the correlation
    assert estimates[0] < 0.05 and estimates[3] > 1.0
    # identical, well-separated features reach the cap
    a = torch.randn(n, 64, generator=g)
    assert float(infonce_mi(a, a, tau=0.05)[1]) > math.log(n) - 0.05
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        infonce_mi(a, a[:10], tau=0.1)


def test_kl_and_contrastive_losses_follow_their_definitions():
    # KL between two-class distributions of binary logits
    fused, branch = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5])
    p = torch.sigmoid(fused / 1.5)
    q = torch.sigmoid(branch / 1.5)
    kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
    torch.testing.assert_close(mi_loss(fused, [branch, branch], 1.5), kl)
    assert float(mi_loss(fused, [fused.clone()], 1.5)) == pytest.approx(0.0, abs=1e-7)
    # SupCon: embeddings clustered by label score lower than the same embeddings with labels shuffled
    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    good = supcon_loss(e, torch.tensor([0, 0, 1, 1]), 0.1)
    bad = supcon_loss(e, torch.tensor([0, 1, 0, 1]), 0.1)
    assert torch.isfinite(good) and good < bad
    # anchor 0's only positive is 1: -log softmax over the other three similarities
    en = torch.nn.functional.normalize(e, dim=1)
    s = en @ en.T / 0.1
    a0 = -(s[0, 1] - torch.logsumexp(s[0, 1:], 0))
    a2 = -(s[2, 3] - torch.logsumexp(s[2, [0, 1, 3]], 0))
    a1 = -(s[1, 0] - torch.logsumexp(s[1, [0, 2, 3]], 0))
    a3 = -(s[3, 2] - torch.logsumexp(s[3, [0, 1, 2]], 0))
    torch.testing.assert_close(good, (a0 + a1 + a2 + a3) / 4)
    # no anchor with a positive: zero, still differentiable
    lone = supcon_loss(e[:2].requires_grad_(), torch.tensor([0, 1]), 0.1)
    assert float(lone.detach()) == 0.0 and lone.requires_grad


# --------------------------------------------------------------- ablations
ABLATION_FIELDS = ("branches", "fusion", "lambda_mi", "lambda_con", "mi_estimator", "shared_encoder")


@pytest.mark.parametrize("config", ["ablation_no_trfi", "ablation_no_mi", "ablation_no_con", "ablation_k2",
                                    "ablation_k3", "ablation_k4", "ablation_k5"])
@pytest.mark.parametrize("estimator", ["infonce", "kl"])
def test_ablations_build_and_train_one_step(config, estimator):
    from fakescope.config import load_config

    cfg = load_config(f"sdr/{config}")
    full = resolve_model_config(cfg.model.name, cfg.model.kwargs)
    switches = {f: getattr(full, f) for f in ABLATION_FIELDS}
    switches["mi_estimator"] = estimator
    torch.manual_seed(0)
    m = create_model("sdr_tiny", **switches).train()  # the ablation's switches on the tiny network
    assert len(m.cfg.branches) == len(full.branches)
    assert (m.trfi is None) == (full.fusion == "mean")
    assert (m.mi_critic is None and m.branch_heads is None) == (full.lambda_mi == 0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    out = m.compute_loss(m.normalize(clips()), torch.tensor([0, 1, 0, 1]))
    assert torch.isfinite(out.total) and ("mi" in out.terms) == (full.lambda_mi > 0)
    assert ("con" in out.terms) == (full.lambda_con > 0)
    out.total.backward()
    opt.step()
    assert not torch.equal(before["encoder.stem.conv.weight"], m.state_dict()["encoder.stem.conv.weight"])
    if m.trfi is not None:
        assert not torch.equal(before["trfi.0.weight"], m.state_dict()["trfi.0.weight"])


# ------------------------------------------------------- inference views
def test_inference_over_clean_or_perturbed_views():
    torch.manual_seed(0)
    clean = create_model("sdr_tiny").eval()
    pert = create_model("sdr_tiny", inference_views="perturbed").eval()
    pert.load_state_dict(clean.state_dict())
    x = clean.normalize(clips(3, seed=1))
    with torch.no_grad():
        p1, p2 = pert(x), pert(x)
        alone = pert(x[1:2])
        c = clean(x)
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)  # deterministic
    torch.testing.assert_close(alone, p1[1:2], rtol=1e-4, atol=1e-5)  # a clip scores the same alone or in a batch
    assert (p1 - c).abs().max() > 1e-4  # the perturbed views change the input of the branches
    # TRFI is used with perturbed views (its weights change the score), not with clean ones (the identity)
    with torch.no_grad():
        for mod in (clean, pert):
            mod.trfi[-1].bias.copy_(torch.tensor([5.0, -5.0, 0.0, 0.0]))
        assert torch.equal(clean(x), c) and (pert(x) - p1).abs().max() > 1e-5
    # fixed settings: inside the training ranges, the colour jitter not the identity
    cfg = TPAConfig()
    p = {k: fixed_tpa_params(k, 2, cfg) for k in ("blur", "jpeg", "color", "rescale", "noise")}
    assert cfg.blur_sigma[0] <= float(p["blur"]["sigma"][0]) <= cfg.blur_sigma[1]
    assert cfg.jpeg_quality[0] <= float(p["jpeg"]["quality"][0]) <= cfg.jpeg_quality[1]
    assert cfg.rescale[0] <= float(p["rescale"]["scale"][0]) <= cfg.rescale[1]
    assert float(p["color"]["brightness"][0]) != 1.0 and float(p["color"]["hue"][0]) != 0.0
    grey = torch.full((2, 8, 3, 32, 32), 0.5)
    field = fixed_tpa("noise", grey, cfg) - grey
    assert field.std() > 0.01  # one fixed field, the same in every frame and for every clip
    torch.testing.assert_close(field, field[:1, :1].expand_as(field), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown TPA"):
        fixed_tpa_params("rotate", 1, cfg)
