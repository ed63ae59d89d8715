"""The similar-items files: one index per host, mapped by every web process
(reviews.similar_files), plus each process's delta of newer rows (reviews.similar)."""

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from reviews import similar_files
from reviews.similar import open_index, similar_open_tasks, similar_resolved
from reviews.tasks import build_similar_indexes
from tests.factories import make_item, make_task, make_user
from triage.models import Embedding, Item, ReviewTask

pytestmark = pytest.mark.django_db

SPACE = "test-space:v1"
DIM = 16


def open_task(vector, encoder=SPACE):
    item = make_item("open", status=Item.Status.IN_REVIEW)
    Embedding.objects.create(
        item=item, encoder=encoder, vector=np.asarray(vector, dtype=np.float32).tobytes()
    )
    return make_task(item)


def exact_neighbours(task, candidates, count):
    """The open tasks nearest to `task` by cosine, by brute force over every vector."""
    unit = {t.pk: v / np.linalg.norm(v) for t, v in candidates}
    query = unit[task.pk]
    scored = sorted(((float(v @ query), pk) for pk, v in unit.items() if pk != task.pk))
    return [pk for _, pk in reversed(scored)][:count]


def test_answers_match_the_exact_neighbours_with_new_and_closed_tasks(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    rng = np.random.default_rng(7)
    user = make_user()
    first = [(open_task(v), v) for v in rng.standard_normal((120, DIM))]
    similar_files.build_index("open", SPACE)  # the file holds these 120
    later = [(open_task(v), v) for v in rng.standard_normal((30, DIM))]  # the delta
    tasks = first + later
    closed = {t.pk for t, _ in tasks[::9]}
    ReviewTask.objects.filter(pk__in=closed).update(completed_at=timezone.now())
    still_open = [(t, v) for t, v in tasks if t.pk not in closed]
    for task, _ in still_open[::7]:
        found = similar_open_tasks(task, user=user, senior=False, count=8, floor=-1.0)
        assert [s.task.pk for s in found] == exact_neighbours(task, still_open, 8)
    mapped = open_index.mapped(SPACE)
    assert mapped is not None and mapped.rows == 120


def test_a_task_opened_after_the_build_is_found_and_a_closed_one_drops(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    user = make_user()
    task = open_task([1, 0, 0, 0])
    in_file = open_task([1, 0.1, 0, 0])
    build_similar_indexes()
    newer = open_task([1, 0.05, 0, 0])
    found = similar_open_tasks(task, user=user, senior=False, count=5, floor=0.5)
    assert [s.task for s in found] == [newer, in_file]
    ReviewTask.objects.filter(pk=in_file.pk).update(completed_at=timezone.now())
    found = similar_open_tasks(task, user=user, senior=False, count=5, floor=0.5)
    assert [s.task for s in found] == [newer]


def maps_of(pid: int | str, path: Path) -> list[str]:
    """The lines of /proc/<pid>/smaps describing the mapping of `path`."""
    lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line[:1].isdigit() or line[:1] in "abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        if inside:
            out.append(line)
    return out


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_the_index_is_mapped_from_the_file_and_shared_by_two_processes(categories, settings):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((3000, DIM))
    task = open_task(vectors[0])
    for v in vectors[1:]:
        open_task(v)
    found = open_index.nearest(SPACE, vectors[0].astype("f4"), count=5, exclude=task.item_id)
    assert len(found) == 5
    mapped = open_index.mapped(SPACE)
    assert mapped is not None and mapped.rows == 3000
    path = similar_files.index_dir() / mapped.name
    assert maps_of("self", path), "the index file is not mapped: it was read into memory"
    # A second process (another web worker) maps the same file and searches it: the pages
    # both touched are shared, one copy in the page cache.
    code = (
        "import sys, django, numpy as np\n"
        "django.setup()\n"
        "from reviews import similar_files\n"
        "from tests.reviews.test_similar_files import maps_of\n"
        "pointer = similar_files.read_pointer('open', sys.argv[1])\n"
        "index = similar_files.open_index(pointer)\n"
        "print(index.search(np.array(sys.argv[2].split(','), 'f4'), 5)[0][0])\n"
        "print('\\n'.join(maps_of('self', similar_files.index_dir() / index.name)))\n"
    )
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TRIAGE_SIMILAR_INDEX_DIR": str(similar_files.index_dir()),
    }
    query = ",".join(str(x) for x in vectors[0])
    out = subprocess.run(
        [sys.executable, "-c", code, SPACE, query],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.splitlines()
    assert int(out[0]) == task.item_id
    shared = [line for line in out if line.startswith("Shared_Clean:")]
    assert shared and int(shared[0].split()[1]) > 0, out


def test_a_rebuild_while_reading_leaves_the_old_mapping_answering(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 3600
    task = open_task([1, 0, 0, 0])
    near = open_task([1, 0.1, 0, 0])
    assert open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=2)[0][0] == task.item_id
    old = open_index.mapped(SPACE)
    assert old is not None
    for _ in range(3):  # the builder keeps one previous build: the first is deleted
        build_similar_indexes()
    assert not (similar_files.index_dir() / old.name).exists()
    found = open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=2)
    assert [pk for pk, _ in found] == [task.item_id, near.item_id]
    assert open_index.mapped(SPACE) is old  # not refreshed yet: still the deleted file
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=2)
    assert open_index.mapped(SPACE).name != old.name


@pytest.mark.django_db(transaction=True)
def test_queries_during_rebuilds_always_answer_the_same(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((400, DIM))
    tasks = [open_task(v) for v in vectors]
    query = vectors[0].astype("f4")
    expected = open_index.nearest(SPACE, query, count=5)
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            for _ in range(8):
                similar_files.build_index("open", SPACE)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    builder = threading.Thread(target=rebuild)
    builder.start()
    answers = []
    while builder.is_alive():
        answers.append(open_index.nearest(SPACE, query, count=5))
    builder.join()
    answers.append(open_index.nearest(SPACE, query, count=5))
    assert not errors
    assert len(tasks) == 400
    assert all([pk for pk, _ in a] == [pk for pk, _ in expected] for a in answers)


def test_a_corrupt_file_is_logged_and_rebuilt_and_the_panel_answers(
    client, categories, settings, caplog
):
    from tests.reviews.test_similar import holder_of

    task = open_task([1, 0, 0, 0])
    near = open_task([1, 0.1, 0, 0])
    assert open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=1)[0][0] == task.item_id
    mapped = open_index.mapped(SPACE)
    path = similar_files.index_dir() / mapped.name
    size = path.stat().st_size
    # A new file in its place (writing into a mapped file would kill this process with
    # SIGBUS; the builder never does), of the same size: only FAISS can tell.
    path.unlink()
    path.write_bytes(b"\0" * size)
    open_index.clear()  # a process starting now
    client.force_login(holder_of(task))
    with caplog.at_level(logging.WARNING, logger="reviews.similar"):
        page = client.get(f"/reviews/tasks/{task.pk}/similar")
    assert page.status_code == 200
    assert f'value="{near.pk}"' in page.content.decode()
    assert "FAISS cannot read it" in caplog.text and str(path) in caplog.text
    assert open_index.mapped(SPACE).name != mapped.name


def test_a_damaged_pointer_is_logged_and_rebuilt(categories, settings, caplog):
    task = open_task([1, 0, 0, 0])
    near = open_task([1, 0.1, 0, 0])
    open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=1)
    similar_files.pointer_path("open", SPACE).write_text("{not json")
    open_index.clear()
    with caplog.at_level(logging.WARNING, logger="reviews.similar"):
        found = open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=2)
    assert [pk for pk, _ in found] == [task.item_id, near.item_id]
    assert "not a similar-items pointer" in caplog.text
    json.loads(similar_files.pointer_path("open", SPACE).read_text())  # rebuilt


def test_without_a_file_a_web_process_queues_a_build_and_never_reads_the_whole_kind(
    categories, settings, monkeypatch
):
    """With a broker the build runs on a worker: the request answers from the rows newer
    than the moment it found no file, not by loading every vector."""
    from reviews import tasks

    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    queued = []
    monkeypatch.setattr(tasks.build_similar_index, "delay", lambda *a, **k: queued.append(a))
    user = make_user()
    task = open_task([1, 0, 0, 0])
    before = open_task([1, 0.1, 0, 0])
    assert similar_open_tasks(task, user=user, senior=False, count=5, floor=0.5) == []
    assert queued == [("open", SPACE)]
    after = open_task([1, 0.2, 0, 0])
    found = similar_open_tasks(task, user=user, senior=False, count=5, floor=0.5)
    assert [s.task for s in found] == [after]
    similar_files.build_index("open", SPACE)  # the worker's build lands
    found = similar_open_tasks(task, user=user, senior=False, count=5, floor=0.5)
    assert [s.task for s in found] == [before, after]


def test_each_embedding_space_has_its_own_file(categories, settings):
    task = open_task([1, 0, 0, 0])
    open_task([1, 0, 0, 0], encoder="other-space:v2")
    open_index.nearest(SPACE, np.array([1, 0, 0, 0], "f4"), count=1)
    open_index.nearest("other-space:v2", np.array([1, 0, 0, 0], "f4"), count=1)
    names = sorted(p.name for p in similar_files.index_dir().glob("open-*.json"))
    assert len(names) == 2
    assert any(n.startswith("open-test-space-v1-") for n in names)
    assert any(n.startswith("open-other-space-v2-") for n in names)
    assert similar_resolved(task.item) == []


def test_an_unknown_kind_is_refused_by_name(db):
    with pytest.raises(ValueError, match="unknown similar-items index 'closed'"):
        similar_files.build_index("closed", SPACE)
