"""Run reports and tenant audit reports (HTML, PDF, CSV) with charts (a later issue)."""
