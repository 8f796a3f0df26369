"""Delivery: from a rendered campaign to messages handed to a mail server, crash-safely.

The flow of one send: ``prepare`` (load, render once, lint the rendering) -> ``service.start``
(fix the audience in the outbox) -> ``engine`` (one event loop drives N connections: they claim
rows from the ``ledger``, build each message with ``mime`` and ``links``, sign it with ``dkim``,
hand it to a transport from ``transports/`` at the campaign's shared ``pace``, and the outcomes
of all connections are recorded in the ``ledger`` in group commits).

- ``service``: send, status and test sends; what the CLI and the scheduler call.
- ``schedule``: ``send-due``, every campaign whose time has come.
- ``headers``: making values safe for mail headers (used by the web's own emails too).

May import: ``newsletter.campaigns``, ``newsletter.subscribers``, ``newsletter.store``,
``newsletter.config``, ``newsletter.errors``.
"""
