"""``python -m worker`` is the same as ``sla-worker``."""

from worker.cli import main

raise SystemExit(main())
