"""How long the cockpit's pages take to render on the demo's data.

Builds the demo (`manage.py demo`: 6,000 labelled messages, a first model, 1,000
incoming) in a throwaway database unless DATABASE_URL points at one that already
has a champion, then renders each page 20 times in-process through Django's test
client, logged in as the demo admin, and prints the median and p95 beside the
stock Django admin index rendered the same way in the same run (the baseline).
Server-side time only: no network, no browser.

    .venv/bin/python benchmarks/cockpit_render.py
    DATABASE_URL=sqlite:////tmp/triage-demo.sqlite3 .venv/bin/python benchmarks/cockpit_render.py
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django_env import setup_django  # noqa: E402


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    # Nearest rank: with 20 loads this is the 19th fastest.
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    # The test client's host; DEBUG is off as in production.
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    work = setup_django()

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from triage.models import Item, ModelVersion

    # DEBUG off serves hashed static names from the manifest, as production does.
    call_command("collectstatic", "--noinput", verbosity=0)
    if ModelVersion.objects.champion() is None:
        print(f"building the demo in {work} (embeds 7,000 messages; a few minutes)…")
        call_command("demo", verbosity=0)
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    champion = ModelVersion.objects.champion()
    assert champion is not None
    pages = {
        "baseline: Django admin index": "/admin/",
        "cockpit overview": "/cockpit/",
        "category what-if (request)": "/cockpit/categories/request/",
        "preview, htmx partial": "/cockpit/categories/request/preview?mode=target&target=0.85",
        "models timeline": "/cockpit/models/",
        f"version page v{champion.pk}": f"/cockpit/models/{champion.pk}/",
        "audit log": "/cockpit/audit/",
    }
    print(
        f"data: {Item.objects.count()} items, {ModelVersion.objects.count()} model version(s); "
        f"{args.loads} loads per page after one warm-up"
    )
    print(f"{'page':36} {'median ms':>10} {'p95 ms':>8}")
    for name, url in pages.items():
        headers = {"HTTP_HX_REQUEST": "true"} if "htmx" in name else {}
        assert client.get(url, **headers).status_code == 200, url  # warm-up
        samples = []
        for _ in range(args.loads):
            start = time.perf_counter()
            response = client.get(url, **headers)
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        print(f"{name:36} {statistics.median(samples):10.1f} {p95(samples):8.1f}")


if __name__ == "__main__":
    main()
