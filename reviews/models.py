"""The analysts' own records: trust in reviewers (second reviews, quarantines, held labels)."""

from reviews.trust.models import HeldLabel, Quarantine, ReviewCheck

__all__ = ["HeldLabel", "Quarantine", "ReviewCheck"]
