"""The stages: sync → evaluate → deliver, each a function of (context, now) → summary.

Each stage reads durable state, does one thing and writes durable state, so it can be re-run
at any time. Celery tasks and the CLI call these same functions.
"""
