"""Small builders for model objects, so each test states only what it cares about."""

import itertools
from typing import Any

from django.contrib.auth.models import Group, User

from reviews.decisions import record_training_example
from triage.access import ADMINS, ANALYSTS
from triage.models import ApiToken, Category, Item, ModelVersion, Prediction, ReviewTask
from triage.monitoring.models import Tally
from triage.monitoring.tallies import Deltas, tally_new_items, tally_opened_tasks

_ids = itertools.count(1)

# Keyword categories the fake encoder can tell apart.
KEYWORD_CATEGORIES = {
    "billing": ("Billing", "invoice refund charge payment card billing"),
    "outage": ("Outage", "server down outage error crash unavailable"),
    "other": ("Other", "hello thanks question general feedback"),
}
KEYWORD_TEXTS = {
    "billing": [
        "please refund the double charge on my card",
        "my invoice shows a wrong payment amount",
        "billing charged my card twice, refund please",
        "the payment failed but the invoice says paid",
        "refund request for an annual billing charge",
    ],
    "outage": [
        "the server is down and shows an error",
        "outage: the site is unavailable since noon",
        "app crash with error 500, server down",
        "everything is unavailable, outage again",
        "error page, the server seems to crash",
    ],
    "other": [
        "hello, thanks for the great support",
        "general question about your company",
        "thanks, just some feedback on the design",
        "hello there, a quick general question",
        "feedback: thanks for the newsletter",
    ],
}


def make_category(slug: str, **fields: Any) -> Category:
    name, description = KEYWORD_CATEGORIES.get(slug, (slug.title(), slug))
    defaults = {"name": name, "description": description, "action_queue": slug} | fields
    category, _ = Category.objects.update_or_create(slug=slug, defaults=defaults)
    return category


def make_keyword_categories() -> dict[str, Category]:
    return {slug: make_category(slug) for slug in KEYWORD_CATEGORIES}


def make_item(text: str = "some text", **fields: Any) -> Item:
    external_id = fields.pop("external_id", f"item-{next(_ids)}")
    item = Item.objects.create(external_id=external_id, text=text, **fields)
    tally_new_items([item])  # as ingest does
    return item


def make_task(item: Item | None = None, **fields: Any) -> ReviewTask:
    item = item or make_item(status=Item.Status.IN_REVIEW)
    fields.setdefault("reason", ReviewTask.Reason.LOW_CONFIDENCE)
    task = ReviewTask.objects.create(item=item, **fields)
    if task.completed_at is None:
        tally_opened_tasks([task.reason])  # as the services that open tasks do
    return task


def make_prediction(
    item: Item,
    label: Category,
    *,
    confidence: float = 0.99,
    route: str = Prediction.Route.AUTO,
    reason: str = "above_threshold",
    model_version: ModelVersion | None = None,
    **fields: Any,
) -> Prediction:
    prediction = Prediction.objects.create(
        item=item,
        label=label,
        confidence=confidence,
        scores=[{"label": label.slug, "confidence": confidence}],
        route=route,
        reason=reason,
        model_version=model_version,
        **fields,
    )
    tally = Deltas()  # as persisting does
    tally.made(Tally.Kind.PREDICTION, prediction.created_at, label.slug, route)
    tally.apply()
    return prediction


def make_user(username: str | None = None, *, group: str = ANALYSTS, password: str = "pw") -> User:
    user = User.objects.create_user(
        username=username or f"user{next(_ids)}", password=password, is_staff=group == ADMINS
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def make_token(name: str | None = None, *, scopes: list[str] | None = None) -> str:
    """A plain token value; with every scope unless `scopes` says which."""
    scopes = list(ApiToken.Scope.values) if scopes is None else scopes
    _, token = ApiToken.issue(name or f"token-{next(_ids)}", scopes=scopes)
    return token


# Variations so each category has enough train and holdout examples.
SUFFIXES = [
    *["", " today", " again", " please help", " asap", " now", " thanks", " urgent"],
    *[" team", " sir", " madam", " folks", " ok", " hi", " right away", " soon"],
]


def make_labelled_history(categories: dict[str, Category], copies: int = 16) -> list[Item]:
    """Resolved keyword items with import training examples: enough to train and measure."""
    items = []
    for slug, texts in KEYWORD_TEXTS.items():
        for suffix in SUFFIXES[:copies]:
            for text in texts:
                item = make_item(text + suffix, status=Item.Status.RESOLVED)
                record_training_example(item=item, category=categories[slug], source="import")
                items.append(item)
    return items


def make_champion(categories: dict[str, Category], *, audit_rate: float = 1.0) -> ModelVersion:
    """A champion trained on the labelled history, at a target the fake model certifies
    (0.75, min support 5), auto-actions audited at `audit_rate` with no floor."""
    from triage import training
    from triage.models import RoutingPolicy

    make_labelled_history(categories)
    version = training.retrain().version
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={
            "target_precision": 0.75,
            "min_support": 5,
            "audit_rate": audit_rate,
            "audit_floor": 0,
        },
    )
    return version
