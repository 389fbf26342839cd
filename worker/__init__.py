"""sla-worker: makes a sales–marketing lead SLA enforce itself.

The package is laid out as the pipeline it runs: ``crm/`` pulls leads, ``store/`` keeps them,
``sla/`` judges them (pure, no I/O), ``pipeline/`` runs the stages, ``slack/`` delivers.
"""

__version__ = "0.1.0"
