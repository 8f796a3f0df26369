"""Subscribers: who is on the list, what they agreed to, and every change of their state.

- ``service``: the one place that changes a subscriber (add, request and confirm a signup, reopen,
  set topics, unsubscribe, bounce, erase), whoever asks: the CLI, the web, the import or the bounce
  handler.
- ``importer``: CSV exports of the signup form (topics, consent, signup times), written in bulk under
  the service's rules; ``csv_input`` reads the file (its encoding and separator, once per file).
- ``consent``: how consent was given, and what an export's consent cell means.
- ``retention``: what is removed, and after how long.
- ``intake``: a request from the public form, kept from its answer until it is applied.
- ``addresses``: cleaning what people type (addresses, names, tags).
- ``queries``: reading the list (audiences, the welcome's, access reports, counts).
- ``listing``: the list as ``subscribers list`` and ``export`` show it, read with Core alone so that
  they start without the ORM.

May import: ``newsletter.store``, ``newsletter.config``, ``newsletter.errors``.
"""
