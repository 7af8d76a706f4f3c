"""SDR's loss terms (spec 3.3 step 5, decision C4): the mutual-information term L_MI and the contrastive term L_con.

The SDR abstract says TRFI "utilizes the theory of mutual information" to capture the temporal
features that the spatially perturbed clusters share, and the objective combines a
mutual-information loss, a contrastive loss and cross-entropy. The paper's equations were not
recovered, so two MI terms are offered (``SDRConfig.mi_estimator``):

* :func:`infonce_mi` (the default): the InfoNCE lower bound on the mutual information between
  each branch's clip feature and the TRFI-fused clip feature (van den Oord et al., 2018; as
  multi-view contrastive coding, Tian et al., 2020), with the other clips of the batch as
  negatives. Maximising it trains TRFI's weighting network, the encoder(s) of every branch and
  the critic. Why InfoNCE and not the alternatives: CLUB (Cheng et al., 2020) is an *upper*
  bound, made for minimising MI, while TRFI must *maximise* the information the branches share;
  MINE (Belghazi et al., 2018; the Donsker-Varadhan bound) needs a moving average to correct
  its biased gradient and has a high variance at the small batches SDR trains with (8 clips),
  whereas InfoNCE has a low-variance gradient, costs one B x B similarity matrix per branch
  and is a valid lower bound for any critic, capped at log(B).
* :func:`mi_loss` (``mi_estimator: kl``): the earlier surrogate, a temperature-softened KL from
  each branch head's prediction to the detached fused prediction. It sends no gradient to TRFI
  (its target is detached); kept for comparison.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def infonce_mi(a: Tensor, b: Tensor, tau: float, symmetric: bool = True) -> tuple[Tensor, Tensor]:
    """InfoNCE between paired features ``a[i]``, ``b[i]`` (``[N, D]`` each): the loss and the MI estimate (nats).

    The critic is the cosine similarity over a temperature, ``f(a_i, b_j) = <a_i, b_j> / (|a_i| |b_j| tau)``.
    For each anchor ``a_i`` the positive is ``b_i`` and the negatives the other ``b_j`` of the batch:
    ``L = -1/N sum_i log( exp f(a_i, b_i) / sum_j exp f(a_i, b_j) )``, a cross-entropy over the N
    candidates. ``I(a; b) >= log N - L`` for any critic (the InfoNCE bound), and since ``L >= 0`` the
    estimate never exceeds ``log N``. ``symmetric`` averages the two directions (anchors in ``a``,
    then in ``b``), each of which is a bound, so the average is one too.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"infonce_mi: expected two [N, D] feature batches of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    n = a.shape[0]
    logits = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T / tau  # f(a_i, b_j)
    target = torch.arange(n, device=a.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss, math.log(n) - loss.detach()


def mi_loss(fused_logits: Tensor, branch_logits: list[Tensor], tau: float) -> Tensor:
    """KL variant of L_MI (``mi_estimator: kl``): mean over branches of KL(p_fused || p_k), temperature-softened,
    target detached (after the MI-driven multi-branch detector of spec 3.3 step 5).

    ``p = softmax([0, logit] / tau)`` is the two-class distribution of a binary logit.
    """
    def log_probs(logit: Tensor) -> Tensor:
        a = logit.float() / tau
        return torch.stack([F.logsigmoid(-a), F.logsigmoid(a)], dim=-1)

    target = log_probs(fused_logits.detach())
    kls = [F.kl_div(log_probs(b), target, log_target=True, reduction="batchmean") for b in branch_logits]
    return torch.stack(kls).mean()


def supcon_loss(embeddings: Tensor, labels: Tensor, tau: float) -> Tensor:
    """L_con (spec 3.3 step 5, C4): supervised contrastive loss (Khosla et al., 2020) on L2-normalised embeddings.

    For anchor i with positives P(i) (same label, i excluded):
    ``-1/|P(i)| sum_p log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) )``, averaged over anchors
    that have a positive.
    """
    e = F.normalize(embeddings.float(), dim=1)
    n = e.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=e.device)
    sim = (e @ e.T / tau).masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return e.sum() * 0.0  # no anchor has a positive: nothing to contrast (keeps the graph)
    per_anchor = log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has]
    return -per_anchor.mean()
