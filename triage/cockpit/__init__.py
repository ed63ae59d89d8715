"""The admins' cockpit: what automation does, what-if previews, and model versions.

Views here draw figures computed by the services that own them (triage.routing.derive,
triage.routing.certify, triage.training); the cockpit adds no statistics of its own.
"""
