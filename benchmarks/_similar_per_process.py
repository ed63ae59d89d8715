"""The similar-items index as it was before issue 20, for benchmarks/_scale_similar.py's
baseline: each web process loads every vector of a kind into its own matrix on its first
query (about 300 MB at 200,000 open tasks) and adds newer rows every refresh.

Served by gunicorn as `benchmarks._similar_per_process:make_application()`.
"""

import os
import threading
import time

import numpy as np


class PerProcessIndex:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._matrices: dict[str, list] = {}  # encoder -> [matrix, load state, refreshed]
        self._lock = threading.Lock()

    def nearest(
        self, encoder: str, query: np.ndarray, *, count: int, exclude: int | None = None
    ) -> list[tuple[int, float]]:
        from django.conf import settings

        from reviews.similar import _Matrix
        from reviews.similar_rows import LOADERS, LoadState

        norm = float(np.linalg.norm(query))
        unit = (query / norm if norm else query).astype(np.float32)
        with self._lock:
            clock = time.monotonic()
            entry = self._matrices.get(encoder)
            if entry is None:
                # The process's first query pays for the load.
                matrix = _Matrix(encoder=encoder)
                ids, blobs, state = LOADERS[self.kind](encoder, LoadState())
                matrix.append(ids, blobs)
                if matrix.size >= settings.TRIAGE_SIMILAR_EXACT_MAX:
                    matrix._inverted_file()
                entry = self._matrices[encoder] = [matrix, state, clock]
            elif clock - entry[2] > settings.TRIAGE_SIMILAR_REFRESH_SECONDS:
                ids, blobs, entry[1] = LOADERS[self.kind](encoder, entry[1])
                entry[0].append(ids, blobs)
                entry[2] = clock
            found = entry[0].nearest(unit, count + 1)
        return [(pk, score) for pk, score in found if pk != exclude][:count]

    def clear(self) -> None:
        self._matrices.clear()


def make_application():  # noqa: ANN201 - a WSGI application
    """The application with reviews.similar's two indexes replaced by per-process ones."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    from reviews import similar

    similar.open_index = PerProcessIndex("open")  # type: ignore[assignment]
    similar.resolved_index = PerProcessIndex("resolved")  # type: ignore[assignment]
    return application
