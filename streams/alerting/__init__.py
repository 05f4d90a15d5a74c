"""Alerting, all of it: who is alerted about which contact, and how the alert reaches the ward.

- ``publish``: a case's registration, as the trace API hands it over (its contacts, its visits and
  its contacts' visits): one alert per contact on ``alerts``, exposure windows on
  ``exposure-matching``, traced persons on ``traced-persons``; confirmed by Kafka before the answer.
- ``matcher`` (with ``windows`` and ``traced``): the worker's streaming matcher, which raises the
  alerts of late data (docs/tracing.md, "Late data").
- ``dispatcher`` (with ``delivery`` and ``webhooks``): ``python -m streams.alerting.dispatcher``
  delivers each alert to its ward's webhook, signed, retried with backoff, never lost.
- ``settings``: ``ALERTS_*``; ``cli``: ``truyvet webhook set | list``.

The contracts every side shares stay in the shared package: the event models (``truyvet.events``:
``Alert``, ``ExposureWindow``, ``TracedPerson``, ``Visit``), the alert id and the ward rule
(``truyvet.alerts``), the contact rule (``truyvet.contact``).
"""
