"""The doctor: checks that a clinic's setup can reach the inbox, each with the fix in plain words.

- ``runner``: :func:`~newsletter.doctor.runner.run_doctor`, every check in order, within a deadline.
- ``report``: a :class:`~newsletter.doctor.report.Check` (id, status, message, fix) and the report.
- ``resolver``: DNS lookups through dnspython, each with a short timeout, against ``dns_servers``.
- ``spf``, ``dkim``, ``dmarc`` (with alignment), ``mx``: the DNS records receivers look at.
- ``domains``: envelope and From domains, organisational domains from the offline public suffix list.
- ``transport``: the SMTP relay (connect, EHLO, STARTTLS and its certificate, AUTH, SIZE) and
  ``--send-test``.
- ``content``: the campaign messages as built (List-Unsubscribe, List-Unsubscribe-Post) and the From domain.
- ``list_health``: complaint and bounce rates over the last 30 days, and ``LIST_CHECKS``, the
  hook where other list checks join.

May import: ``newsletter.delivery``, ``newsletter.campaigns``, ``newsletter.subscribers``,
``newsletter.store``, ``newsletter.config``, ``newsletter.errors``.
"""
