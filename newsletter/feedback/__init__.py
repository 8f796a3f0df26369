"""Feedback: what comes back after sending, and what the list learns from it.

- ``classify``: what a returned message is (hard, soft or blocked bounce, delay, complaint,
  auto-reply, anything else) and whom it names, read with ``parse`` (the structure, by the standard
  library's email parser) and flufl.bounce (the failed addresses of text bounces).
- ``ses`` and ``sns``: Amazon SES notifications through SNS, with the signature verified.
- ``match``: from a reading to the outbox row it is about (VERP, then the report's recipient, then
  the original Message-ID), never trusting an address that anyone could have typed.
- ``ingest``: one door for everything that comes back (files, Maildir, mbox, standard input, IMAP,
  webhooks): record it once, match it, apply the policy through ``subscribers.service``.
- ``sources`` and ``imap``: reading messages from files and folders, and polling a mailbox.
- ``records``: the kept evidence (listing, showing, retention and erasure).
- ``report``: what happened to a campaign, without tracking anyone.

May import: ``newsletter.delivery``, ``newsletter.campaigns``, ``newsletter.subscribers``,
``newsletter.store``, ``newsletter.config``, ``newsletter.errors``.
"""
