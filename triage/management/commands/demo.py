"""Set up the demo on real text: desks, history, a first model, an incoming queue."""

import random
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from triage import training
from triage.access import ADMINS, ANALYSTS
from triage.actions.models import Endpoint
from triage.api import ingest
from triage.api.intake import ItemIn
from triage.management.demo_data import DESKS, DemoDataMissing, load_messages
from triage.models import ApiToken, AuditLog, Category, Item, ModelVersion, RoutingPolicy

DEMO_USERS = {
    "admin": ("triage-admin", ADMINS),
    "analyst": ("triage-analyst", ANALYSTS),
}
CHUNK = 250
DEMO_WEBHOOK_PORT = 8001
DEMO_WEBHOOK_URL = f"http://127.0.0.1:{DEMO_WEBHOOK_PORT}/webhooks"
DEMO_TARGET_PRECISION = 0.9


class Command(BaseCommand):
    help = (
        "Load the disaster-messages demo: desks, labelled history, a first model, incoming items."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--history", type=int, default=6000, help="labelled train-split messages to load"
        )
        parser.add_argument(
            "--incoming", type=int, default=1000, help="validation-split messages to ingest"
        )

    def handle(self, *args: Any, history: int, incoming: int, **options: Any) -> None:
        if history < 50 or incoming < 0:
            raise CommandError("--history must be at least 50 and --incoming at least 0")
        try:
            train = load_messages("train")
            validation = load_messages("validation")
        except DemoDataMissing as exc:
            raise CommandError(str(exc)) from exc

        for slug, (name, description) in DESKS.items():
            Category.objects.get_or_create(
                slug=slug,
                defaults={"name": name, "description": description, "action_queue": slug},
            )
        policy = RoutingPolicy.current()
        if (
            policy.target_precision is None
            and not AuditLog.objects.filter(action="policy").exists()
        ):
            # The demo's point: automate what can be automated at 90% precision.
            policy.target_precision = DEMO_TARGET_PRECISION
            policy.save()
            AuditLog.record_change(
                actor="demo",
                action="policy",
                target="routing policy",
                before={"target_precision": None},
                after={"target_precision": DEMO_TARGET_PRECISION},
            )

        # A fixed random subset: the same rows on every run, so a rerun reuses them.
        rng = random.Random(0)
        sample = rng.sample(train, min(history, len(train)))
        items = [ItemIn(external_id=f"dm-{m.id}", text=m.text, label=m.desk) for m in sample]
        categories = {c.slug: c for c in Category.objects.all()}
        created = 0
        for start in tqdm(range(0, len(items), 1000), desc="history", unit="k rows"):
            result = ingest.import_history(items=items[start : start + 1000], categories=categories)
            created += len(result.created_ids)
        self.stdout.write(f"History: {created} new labelled messages ({len(items)} in the sample).")

        if ModelVersion.objects.champion() is None or created:
            self.stdout.write("Training the first model (embeds the history once)…")
            trained = training.retrain(actor="demo")
            self.stdout.write(f"{trained.version}: {trained.message}")

        incoming_items = [
            ItemIn(external_id=f"dm-{m.id}", text=m.text, metadata={"genre_split": m.split})
            for m in rng.sample(validation, min(incoming, len(validation)))
        ]
        queued = 0
        for start in tqdm(range(0, len(incoming_items), CHUNK), desc="incoming", unit="batch"):
            result = ingest.ingest_items(items=incoming_items[start : start + CHUNK])
            queued += len(result.created_ids)
        counts = {
            s: Item.objects.filter(source=Item.Source.API, status=s).count() for s in Item.Status
        }
        self.stdout.write(
            f"Incoming: {queued} new messages; "
            + ", ".join(f"{status}: {n}" for status, n in counts.items())
        )

        for username, (password, group) in DEMO_USERS.items():
            user, made = User.objects.get_or_create(username=username)
            if made:
                user.set_password(password)
                user.is_staff = group == ADMINS
                user.save()
            user.groups.add(Group.objects.get(name=group))
        ApiToken.objects.filter(name="demo").delete()
        # Every scope, so each of the README's curl examples works with it.
        _, token = ApiToken.issue("demo", scopes=ApiToken.Scope.values)
        endpoint = self.register_demo_endpoint()

        self.stdout.write(self.style.SUCCESS("\nDemo ready."))
        for username, (password, group) in DEMO_USERS.items():
            self.stdout.write(f"  {group[:-1]:8} login: {username} / {password}")
        self.stdout.write(f"  API token: {token}")
        self.stdout.write(
            f"  Webhooks for the request desk go to {endpoint.url} (off until its receiver runs):"
            f"\n    .venv/bin/python manage.py listen_webhooks --port {DEMO_WEBHOOK_PORT} "
            f"--secret {endpoint.secret} --activate"
        )

    def register_demo_endpoint(self) -> Endpoint:
        """An endpoint for the request desk at listen_webhooks' address, off until it runs."""
        endpoint, made = Endpoint.objects.get_or_create(
            url=DEMO_WEBHOOK_URL,
            defaults={
                "description": "The demo receiver: manage.py listen_webhooks --port 8001",
                "is_active": False,
            },
        )
        if made:
            endpoint.categories.set(Category.objects.filter(slug="request"))
        return endpoint
