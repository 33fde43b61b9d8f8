"""`arcx plan`: what a job will read, keep, write and cost, before it runs (docs/plan-report.md)."""
