"""What the admins watch: certified thresholds and automation now (metrics)."""
