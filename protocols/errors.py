"""The one error family of ``protocols``, split by who is to blame.

``LocalProtocolError`` means *we* tried to produce something the protocol does
not allow (a message that will not encode). ``RemoteProtocolError`` means the
peer sent something we cannot accept (a malformed, oversized or unknown
frame). Callers that translate protocol trouble into their own errors catch
``ProtocolError`` once, at one boundary.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of every error raised by ``protocols``."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""
