"""Losses that ignore unannotated pixels exactly (their gradient is zero)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .targets import IGNORE


def instance_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Masked BCE + Dice on foreground plus masked BCE on the centre map.

    ``target`` is (N, 4, H, W): foreground, centre map, weight (0 = ignore) and
    centre-map weight (:func:`.targets.instance_targets`); a 3-channel target
    uses the weight for both. Every term is multiplied by its weight, so a
    pixel of weight 0 has a gradient of exactly 0.
    """
    logits = logits.float()
    fg, centre, weight = target[:, 0], target[:, 1], target[:, 2]
    centre_weight = target[:, 3] if target.shape[1] > 3 else weight
    total = weight.sum().clamp_min(1.0)
    bce_fg = (F.binary_cross_entropy_with_logits(logits[:, 0], fg, reduction="none") * weight).sum() / total
    bce_centre = F.binary_cross_entropy_with_logits(logits[:, 1], centre, reduction="none")
    bce_centre = (bce_centre * centre_weight).sum() / total
    prob = torch.sigmoid(logits[:, 0]) * weight
    dice = 1 - (2 * (prob * fg).sum() + 1) / (prob.sum() + (fg * weight).sum() + 1)
    return bce_fg + bce_centre + dice


def semantic_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice over annotated pixels; ``target`` uses IGNORE (-1) for the rest."""
    logits = logits.float()
    valid = (target != IGNORE).float()
    if valid.sum() == 0:
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target.clamp_min(0), reduction="none")
    ce = (ce * valid).sum() / valid.sum()
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(target.clamp_min(0), logits.shape[1]).permute(0, 3, 1, 2).float() * valid[:, None]
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denominator = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = 1 - ((2 * inter + 1) / (denominator + 1))[present].mean()
    return ce + dice
