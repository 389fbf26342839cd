"""What a stage returns: a dataclass of counters, serialised by one helper for task results,
logs and the CLI. Fields marked :data:`DETAIL` (lists of items, rendered messages) stay out
of the serialised form: they are for the caller in the same process, not for a broker.

    items: list[Item] = field(default_factory=list, metadata=DETAIL)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: Field metadata: keep this field out of :meth:`Summary.as_dict` (too big, or not JSON).
DETAIL = {"detail": True}


@dataclass
class Summary:
    """Base of every stage's summary."""

    def failure(self) -> str | None:
        """Why the stage did not do its job (work is kept for the next run), or None."""
        return None

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("detail")}
