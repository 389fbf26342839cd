"""sla-worker: makes a sales–marketing lead SLA enforce itself.

The package is laid out as the pipeline it runs: ``crm/`` pulls leads, ``store/`` keeps them,
``sla/`` judges them (pure, no I/O), ``pipeline/`` runs the stages, ``slack/`` delivers.

Glossary — one word per thing, in code, config, README and Slack text alike:

agreement
    The SLA the worker enforces: the validated config as engine objects (``config.Agreement``:
    policies, calendars, teams, escalation ladder).
lead, owner, rep
    A CRM record sales must follow up; its owner is the rep (a CRM owner) it is assigned to.
assignment
    The moment the current owner got the lead; the first-touch clock starts there.
touch
    A sales activity by the owner on the lead that counts (call, e-mail, meeting).
business time, calendar
    Time inside a calendar's opening hours in its time zone, minus its holidays.
policy, rule
    A policy (chosen per lead by priority, source, score…) sets deadlines for its rules:
    ``first_touch``, ``follow_up``, ``max_gap``, ``min_time_spent``, ``early_return``.
finding
    The engine's latest verdict on one rule of one lead, stored (``models.Finding``); its state
    is a ``RuleState``: pending, warning, breached, met, met late, paused, not applicable.
warning, breach
    A deadline is near; a deadline passed without the promised action.
escalation level, repeat
    Level 0 tells the rep at the breach; higher levels tell managers or channels after more
    business time; a repeat re-sends the highest level reached every ``repeat_every``.
recycle
    Hand a lead back to marketing nurturing in the CRM (audited, undoable).
notice
    What one message says about one lead (``notices.Notice``), of a ``NoticeKind``: warning,
    breach, escalation, resolved ("done, late"), recycled, acknowledged (the rep hears who
    acknowledged their breach); or a report for a channel.
draft
    A notice addressed to one recipient, not yet scheduled (``pipeline.notifications``).
envelope
    What a stage hands the outbox: a payload for one recipient with its dedup key, delivery
    and due time (``outbox.Envelope``); :func:`outbox.enqueue` is the one way in.
outbox row
    An envelope in the store (``models.OutboxRow``) with a ``Status``: pending, sending,
    sent, failed, rerouted, superseded; only ``store.outbox``'s transitions change it.
delivery, digest
    How a recipient's due rows become messages: ``direct`` (one list, later news in the lead's
    thread), ``digest`` (a manager's summary at the digest times), ``report`` (ready-made).
post, Slack message
    One message deliver sends and the rows it carries (``deliver.Post``); its Block Kit body
    and fallback text (``slack.messages.SlackMessage``).
command, action
    What a person asks the worker from Slack: a slash command (``/sla explain``) or a button
    (*Acknowledge*, *Snooze*, *Logged a touch*). Answered to that person alone, allowed by
    ``permissions``, audited (``Action``).
acknowledgement
    A breach (lead, rule, breached deadline) someone acknowledged from a digest's button
    (``models.Acknowledgement``): no repeat and no further level of it is sent.
snooze
    A breach or warning whose reminders to the rep (level 0) someone held back until a time
    from a reminder's button (``models.Snooze``), bounded by ``slack.max_snooze``; the levels
    above the rep are never held back.
stage, summary, context
    A stage is ``run(ctx, now) -> Summary`` (sync, evaluate, deliver, recycle, report, prune);
    the context is what ``open_context`` builds once: settings, agreement, store, clients.
"""

__version__ = "0.1.0"
