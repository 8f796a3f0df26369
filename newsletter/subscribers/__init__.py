"""Subscribers: who is on the list, what they agreed to, and every change of their state.

- ``service``: the one place that changes a subscriber (add, confirm, reopen, set topics,
  unsubscribe, bounce, erase), whoever asks: the CLI, the web, the import or the bounce handler.
- ``importer``: CSV exports of the signup form, written in bulk under the service's rules.
- ``addresses``: cleaning what people type (addresses, names, tags).

May import: ``newsletter.store``, ``newsletter.config``, ``newsletter.errors``.
"""
