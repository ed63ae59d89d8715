"""Encoder threads per process (triage.ml.threads): the runtime's default alone, a share of
the cores when several processes encode at once, or the setting."""

from pathlib import Path

import pytest

from triage.ml import onnx_encoder, threads
from triage.ml.onnx_encoder import OnnxEncoder


@pytest.fixture
def sharing(monkeypatch):
    """share_cores for this test only (it is the process's)."""
    monkeypatch.setattr(threads, "_sharing", 1)

    def share(processes: int, *, cpus: int) -> None:
        monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
        threads.share_cores(processes)

    return share


def test_a_process_alone_keeps_the_runtime_default(sharing, settings):
    settings.TRIAGE_ENCODER_THREADS = None
    assert threads.encoder_threads() is None


@pytest.mark.parametrize(
    ("processes", "cpus", "expected"),
    [(2, 2, 1), (2, 8, 4), (3, 8, 2), (4, 2, 1), (1, 8, None)],
)
def test_processes_that_encode_at_once_share_the_cores(
    sharing, settings, processes, cpus, expected
):
    settings.TRIAGE_ENCODER_THREADS = None
    sharing(processes, cpus=cpus)
    assert threads.encoder_threads() == expected


def test_the_setting_wins_over_the_share(sharing, settings):
    settings.TRIAGE_ENCODER_THREADS = 3
    sharing(2, cpus=2)
    assert threads.encoder_threads() == 3


def test_no_process_count_below_one(sharing):
    with pytest.raises(ValueError, match="processes must be >= 1, got 0"):
        threads.share_cores(0)


def test_the_int8_encoder_is_built_with_the_share(sharing, settings, monkeypatch, tmp_path):
    """OnnxEncoder.from_spec hands the share to the session it builds."""
    settings.TRIAGE_ENCODER_THREADS = None
    settings.TRIAGE_ARTIFACT_DIR = tmp_path
    sharing(2, cpus=4)
    seen = {}

    def init(self, model_dir: Path, **kwargs):
        seen.update(kwargs)
        self.encoder_id = "spy"

    monkeypatch.setattr(OnnxEncoder, "__init__", init)
    onnx_encoder.OnnxEncoder.from_spec({"class": "triage.ml.onnx_encoder.OnnxEncoder"})
    assert seen["threads"] == 2


def test_the_vote_searches_with_the_share(sharing, settings):
    """The nearest examples' vote (faiss's OpenMP threads) takes the same share: two pool
    processes on two cores search with one thread each, not two."""
    import faiss
    import numpy as np

    from triage.ml.knn import nearest_references

    settings.TRIAGE_ENCODER_THREADS = None
    before = faiss.omp_get_max_threads()
    refs = np.eye(4, dtype=np.float32)
    try:
        faiss.omp_set_num_threads(2)
        sharing(2, cpus=2)
        similarity, rows = nearest_references(refs[:2], refs, 2)
        assert faiss.omp_get_max_threads() == 1
        assert rows[:, 0].tolist() == [0, 1] and similarity[:, 0].tolist() == [1.0, 1.0]
    finally:
        faiss.omp_set_num_threads(before)


def test_a_small_product_runs_on_one_blas_thread_and_the_limit_is_lifted_after():
    """The embedding head's product: numpy's OpenBLAS on the calling thread only (a worker
    it woke would spin for 0.1 s after), then its threads as they were."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from triage.ml.heads import LinearHead

    def numpys_blas_threads() -> set[int]:
        return {
            i["num_threads"]
            for i in threadpool_info()
            if i["user_api"] == "blas" and "numpy" in i["filepath"]
        }

    seen: list[set[int]] = []
    head = LinearHead(labels=("a", "b"), weights=np.eye(2, 3, dtype=np.float32), bias=np.zeros(2))

    class Watched(np.ndarray):
        def __matmul__(self, other):
            seen.append(numpys_blas_threads())
            return np.asarray(self) @ other

    with threadpool_limits(limits=2, user_api="blas"):
        assert numpys_blas_threads() == {2}
        logits = head.logits(np.ones((4, 3), dtype=np.float32).view(Watched))
        assert numpys_blas_threads() == {2}
    assert seen == [{1}]
    assert np.asarray(logits).tolist() == [[1.0, 1.0]] * 4
