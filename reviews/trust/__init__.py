"""Reviewers whose labels can be trusted: second reviews, per-analyst quality, quarantine.

- second_review: which decisions get an independent second look, and what its outcome does;
- quality: per-analyst agreement, Cohen's kappa and speed;
- quarantine: who is quarantined (and by which rule), and admins releasing or rejecting
  the labels held back from training (on the exact binomial bounds of triage.stats).
"""
