"""The analysts' app's background tasks: thin wrappers over its services."""

from celery import shared_task

from reviews import similar_files


@shared_task
def build_similar_index(kind: str, encoder: str, requested_at: float | None = None) -> str:
    """One kind's similar-items file, asked for by a web process that has none to map."""
    return similar_files.build_index(kind, encoder, requested_at=requested_at)


@shared_task
def build_similar_indexes() -> list[str]:
    """Every similar-items file in use, rebuilt whole (Celery beat)."""
    return similar_files.build_all()
