"""The stages: sync → evaluate → deliver, plus recycle, report and prune.

Every stage module has ``run(ctx, now) -> Summary``; ``stages.run_stage`` reads the clock once
and runs one by name. Each stage reads durable state, does one thing and writes durable state,
so it can be re-run at any time. Celery tasks and the CLI call these same functions.
"""
