"""The one error family of ``protocols``, split by who is to blame.

``LocalProtocolError`` means *we* tried to produce something the protocol does
not allow (a message that will not encode). ``RemoteProtocolError`` means the
peer sent something we cannot accept (a malformed, oversized or unknown
frame). Callers that translate protocol trouble into their own errors catch
``ProtocolError`` once, at one boundary.
"""

from __future__ import annotations

__all__ = ["InvalidBody", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of every error raised by ``protocols``."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class InvalidBody(RemoteProtocolError):
    """A body that is not JSON, or not the shape its endpoint expects.

    ``errors`` holds one line per problem, each ending in the wire path of
    the value at fault (``"expected an integer, got a string @
    $.jobs[2].priority"``), so an HTTP layer can answer 400 with ``str(exc)``
    as the message and nothing else to say.
    """

    def __init__(self, *errors: str) -> None:
        super().__init__(*errors)

    @property
    def errors(self) -> tuple[str, ...]:
        """One line per problem, ``"what went wrong @ $.path"``."""
        return self.args

    def __str__(self) -> str:
        return "; ".join(self.args)
