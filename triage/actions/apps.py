from django.apps import AppConfig


class ActionsConfig(AppConfig):
    """Events, the outbox, webhook endpoints and their deliveries, and the rules before the model.

    Its own app label, so its migrations never collide with the core app's.
    """

    name = "triage.actions"
    label = "actions"
    verbose_name = "Actions: events, webhooks and rules"
    default_auto_field = "django.db.models.BigAutoField"
