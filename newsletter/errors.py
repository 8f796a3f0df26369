"""The project's own exceptions.

Anything derived from :class:`NewsletterError` is a problem the user can fix: the CLI prints its message on
one line and exits non-zero, and the web app answers with a 4xx page. Anything else is a bug.
"""


class NewsletterError(Exception):
    """A user-facing error with a one-line message."""

    exit_code = 1


class ConfigError(NewsletterError):
    """Settings that cannot be used."""


class StoreError(NewsletterError):
    """The store is missing, unreachable or at the wrong schema revision."""


class InvalidAddress(NewsletterError):
    """An email address that email-validator refuses."""


class NotFound(NewsletterError):
    """No subscriber (or campaign) by that name."""


class Suppressed(NewsletterError):
    """An address that has left the list, bounced, complained or been erased."""


class InputError(NewsletterError):
    """A file or value that cannot be used as given."""


class CannotListen(InputError):
    """A local server's port is taken (one already running there, say) or not ours to take."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"cannot listen on {host}:{port}: {reason}; choose another port with --port")
