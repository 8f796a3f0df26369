"""Delivery: from a rendered campaign to messages handed to a mail server, crash-safely.

The flow of one send: ``prepare`` (load, render once, lint the rendering) -> ``service.start``
(fix the audience in the outbox) -> ``engine`` (one event loop drives N connections: they claim
rows from the ``ledger``, build each message with ``mime`` and ``links``, sign it with ``dkim``,
hand it to a transport from ``transports/`` at the campaign's shared ``pace``, and the outcomes
of all connections are recorded in the ``ledger`` in group commits).

- ``service``: send, status and test sends; what the CLI and the scheduler call.
- ``schedule``: ``send-due``, every campaign whose time has come, the welcomes, and retention.
- ``welcome``: ``campaigns/_welcome.md`` to each person who confirms, once, through the outbox.
- ``erasure``: erasing a person from the store and from the transport's copies of their messages.
- ``headers``: making values safe for mail headers (used by the web's own emails too).
- ``faq_history``: the FAQ entries each started campaign carried (recorded by ``service.start``), and
  which entries are new or changed since (``newsletter faq changes``).

May import: ``newsletter.campaigns``, ``newsletter.subscribers``, ``newsletter.store``,
``newsletter.config``, ``newsletter.errors``.
"""
