"""``sla-worker web``: the HTTP service Slack calls for slash commands and interactivity.

Built on Slack's own framework (``slack_bolt``) in HTTP mode, served as WSGI by waitress. Bolt
refuses every request whose signature or timestamp does not check out (401) before any code of
ours runs; a listener acknowledges within Slack's three seconds and hands the work to a Celery
task. Nothing here reads the store or judges a lead: ``bolt_app`` (what Slack may ask),
``handoff`` (to the workers), ``server`` (HTTP), ``socket_mode`` (the same app over Socket
Mode, for workspaces that cannot expose a URL: no HTTP port for Slack, no signature).
"""
