"""Field metadata the one converter (``protocols.codec``) reads.

Apart from the converter so that the message modules it configures
(``protocols.ipc``) can mark their fields without importing it.
"""

from __future__ import annotations

__all__ = ["OMIT_WHEN_DEFAULT"]

#: Field metadata key: leave the field off the wire while it holds its default.
OMIT_WHEN_DEFAULT = "batchyard.omit_when_default"
