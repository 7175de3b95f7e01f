"""Rendering a report: ``latest.md`` and, when matplotlib is importable, charts."""
