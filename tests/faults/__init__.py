"""The fault suite: each test breaks something the way production breaks it (bad CRM data, a slow
or misbehaving Slack, overlapping runs, outages) and counts what was lost or sent twice.
Run it apart with ``pytest -m faults``."""
