"""Campaigns: what staff write, and turning it into one email for everyone (stage one of two).

- ``content`` and ``blocks``: the Markdown file, its front matter and its ``:::`` blocks
  (``markdown_file``: what campaign and FAQ files share).
- ``faq``: the FAQ in ``faq/``, one file per question, carried by ``::: faq ref=ID`` blocks; versions
  of an answer, word-level diffs, what changed. ``faq_lint``: ``newsletter faq lint``.
- ``scaffold``: what new campaign files start from (blank, or drafted from the FAQ's changes) and the
  placeholder texts lint refuses.
- ``templating``, ``sandbox``, ``render``, ``plaintext``: Jinja over MJML in a sandbox, compiled
  ONCE per campaign into HTML and text with holes for the personal fields; ``images``: the project's
  own images it embeds (cid:), read and checked once.
- ``lint``, ``vignette``, ``deid/``: the checks before a build or a send, and the de-identification
  gate for client vignettes with its reviewer sign-offs.
- ``spamassassin``: SpamAssassin's offline score of a built message, for lint.
- ``service``: listing, scaffolding, building to files and signing off, callable from Python.
- ``preview``: the live preview server for staff.
- ``templates/``: the default email templates; a clinic's ``templates/`` folder overrides them.

May import: ``newsletter.config``, ``newsletter.errors``. Knows nothing of subscribers or sending.
"""
