"""Teaching a model: training pairs, targets, losses, augmentation, the loop, scoring, fine-tuning, projects.

Builds on :mod:`..inference` (held-out scores are the pipeline's own results) and :mod:`..model`.
"""
