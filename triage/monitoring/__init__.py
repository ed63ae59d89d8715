"""What the admins watch, and how the promise is verified and guarded in production.

metrics: certified thresholds and automation now (one snapshot for the API, the
policy command and the cockpit); audits: stratified audit sampling and verdicts;
precision and drift: the pure statistics of live precision and the drift watch;
watch: suspension and resumption; live: the live figures per category.
"""
