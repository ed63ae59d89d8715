"""N analysts working the review queue at once: claim → render → decide, each in its
own process (one database connection each, as behind gunicorn's workers).

Reusable: call run_analyst_load() from any benchmark whose Django is set up and whose
database has open review tasks and analysts (see benchmarks/scale.py). Each step is
timed per task:

- claim:  reviews.claims.claim_next_task (SELECT … FOR UPDATE SKIP LOCKED + lease)
- render: GET /reviews/ as htmx through the whole middleware stack; the view finds the
  task the analyst holds and renders its card (reviews.views)
- decide: reviews.decisions.submit_review (review, events, training example)

Double claims are tasks handed to more than one analyst; it must be zero.

Run on its own against a prepared database:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/triage_scale \\
        .venv/bin/python benchmarks/analyst_load.py --analysts 8 --tasks 40
"""

import argparse
import multiprocessing
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ("claim", "render", "decide", "claim+render")


@dataclass
class AnalystLoad:
    analysts: int
    tasks: int  # tasks decided, in all
    seconds: float
    timings: dict[str, list[float]] = field(default_factory=dict)  # ms per task, per step
    double_claims: int = 0
    errors: list[str] = field(default_factory=list)

    def percentile(self, step: str, q: float) -> float:
        values = sorted(self.timings[step])
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            step: {
                "p50": self.percentile(step, 50),
                "p95": self.percentile(step, 95),
                "mean": statistics.fmean(self.timings[step]) if self.timings[step] else 0.0,
            }
            for step in STEPS
        }

    def table(self) -> str:
        lines = [f"{'step':<14}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}"]
        for step, row in self.summary().items():
            lines.append(f"{step:<14}{row['p50']:>9.1f}{row['p95']:>9.1f}{row['mean']:>9.1f}")
        return "\n".join(lines)


def _analyst(
    username: str,
    tasks: int,
    category_slugs: Sequence[str],
    think_seconds: float,
    out: multiprocessing.Queue,
) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from reviews.claims import claim_next_task
    from reviews.decisions import submit_review

    timings: dict[str, list[float]] = {step: [] for step in STEPS}
    claimed: list[int] = []
    errors: list[str] = []
    try:
        user = User.objects.get(username=username)
        # "localhost" is in the benchmark's ALLOWED_HOSTS (the test client's "testserver" is not).
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        # Untimed warm-up, as a gunicorn worker that has served before: the first page of a
        # process compiles its templates. (It claims a task, which the first claim returns.)
        client.get("/reviews/", HTTP_HX_REQUEST="true")
        pause = random.Random(username)
        for n in range(tasks):
            if think_seconds:
                # Reading the task: not timed, and it spreads the analysts' requests out.
                time.sleep(think_seconds * pause.uniform(0.5, 1.5))
            t0 = time.perf_counter()
            task = claim_next_task(user=user)
            t1 = time.perf_counter()
            if task is None:
                break
            claimed.append(task.pk)
            page = client.get("/reviews/", HTTP_HX_REQUEST="true")
            t2 = time.perf_counter()
            if page.status_code != 200:
                errors.append(f"{username}: GET /reviews/ answered {page.status_code}")
                break
            submit_review(
                task_id=task.pk, user=user, category_slug=category_slugs[n % len(category_slugs)]
            )
            t3 = time.perf_counter()
            timings["claim"].append((t1 - t0) * 1000)
            timings["render"].append((t2 - t1) * 1000)
            timings["decide"].append((t3 - t2) * 1000)
            timings["claim+render"].append((t2 - t0) * 1000)
    except Exception as exc:  # reported by the parent, with the analyst's name
        errors.append(f"{username}: {type(exc).__name__}: {exc}")
    finally:
        connection.close()
    out.put((timings, claimed, errors))


def run_analyst_load(
    *,
    analysts: int = 8,
    tasks_per_analyst: int = 40,
    usernames: Sequence[str] | None = None,
    think_seconds: float = 0.0,
) -> AnalystLoad:
    """Run `analysts` processes that each claim, render and decide up to
    `tasks_per_analyst` tasks at the same time; timings and double claims.

    `think_seconds` is the mean pause before each claim (a person reading the task,
    drawn between half and one and a half of it). 0 runs flat out: on a small machine
    that measures CPU saturation more than the queue.

    The analysts are existing users in the analysts group (`usernames`, default
    bench-analyst-1…N, which ensure_analysts() creates).
    """
    from django.db import connections

    from triage.models import Category

    names = list(usernames or [f"bench-analyst-{i + 1}" for i in range(analysts)])[:analysts]
    slugs = list(Category.objects.filter(is_active=True).values_list("slug", flat=True))
    # Children must open their own connections: a forked socket shared by two processes
    # corrupts both.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    processes = [
        context.Process(target=_analyst, args=(name, tasks_per_analyst, slugs, think_seconds, out))
        for name in names
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    load = AnalystLoad(analysts=len(names), tasks=0, seconds=seconds)
    load.timings = {step: [] for step in STEPS}
    claims: Counter[int] = Counter()
    for timings, claimed, errors in results:
        for step in STEPS:
            load.timings[step].extend(timings[step])
        claims.update(claimed)
        load.errors.extend(errors)
    load.tasks = len(load.timings["decide"])
    load.double_claims = sum(1 for n in claims.values() if n > 1)
    return load


def ensure_analysts(n: int) -> list[str]:
    """bench-analyst-1…n in the analysts group (created once)."""
    from django.contrib.auth.models import Group, User

    from triage.access import ANALYSTS

    group = Group.objects.get(name=ANALYSTS)
    names = [f"bench-analyst-{i + 1}" for i in range(n)]
    for name in names:
        user, created = User.objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysts", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=40, help="tasks per analyst")
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds between tasks")
    args = parser.parse_args()
    if "DATABASE_URL" not in __import__("os").environ:
        parser.error("set DATABASE_URL to a database with open review tasks")
    sys.path.insert(0, str(HERE))
    from _django_env import setup_django

    setup_django()
    names = ensure_analysts(args.analysts)
    baseline = run_analyst_load(analysts=1, tasks_per_analyst=args.tasks, usernames=names)
    load = run_analyst_load(
        analysts=args.analysts,
        tasks_per_analyst=args.tasks,
        usernames=names,
        think_seconds=args.think,
    )
    print(f"1 analyst (baseline), {baseline.tasks} tasks:\n{baseline.table()}\n")
    print(f"{load.analysts} analysts at once, {load.tasks} tasks in {load.seconds:.1f}s:")
    print(load.table())
    print(f"double claims: {load.double_claims}; errors: {load.errors or 'none'}")


if __name__ == "__main__":
    main()
