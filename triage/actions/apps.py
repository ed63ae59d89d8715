from django.apps import AppConfig


class ActionsConfig(AppConfig):
    """Events, the outbox, webhook endpoints and their deliveries, and the rules before the model.

    Its own app label, so its migrations never collide with the core app's.
    """

    name = "triage.actions"
    label = "actions"
    verbose_name = "Actions: events, webhooks and rules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the delivery tasks in every process, web included: the outbox queues
        # them by name (triage.actions.delivery.DELIVER_TASK), not by importing them.
        from triage.actions import tasks  # noqa: F401
