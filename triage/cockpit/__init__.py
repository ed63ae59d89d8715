"""The admins' cockpit: what automation does, what-if previews, and model versions.

Views here draw figures computed by the services that own them (triage.policy,
triage.thresholds, triage.training); the cockpit adds no statistics of its own.
"""
