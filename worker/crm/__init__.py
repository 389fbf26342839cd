"""CRM connectors: one module per provider, each a small client that returns ``records``
dataclasses and raises the project's own errors. They know nothing about SLAs."""
