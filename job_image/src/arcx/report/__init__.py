"""`arcx report STORE --out DIR`: an HTML page of captioned plots of a store (docs/plan-report.md)."""
