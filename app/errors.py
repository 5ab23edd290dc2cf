"""One exception tree: its two branches say whether retrying could help.

``InputError`` is the image's fault: record ``failed`` with the message and do
not retry. ``TransientError`` is the world's fault (network, throttling, a
full disk): record it and re-raise so Lambda or Batch retries.
"""

from __future__ import annotations


class TilerError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(TilerError):
    """The source file cannot be converted as it is; retrying will not help."""


class UnsupportedFormat(InputError):
    """Not an image, or a format outside the allow-list."""


class ImageTooLarge(InputError):
    """Width x height is over the configured limit."""


class CorruptImage(InputError):
    """Truncated or damaged pixel data."""


class SourceGone(TilerError):
    """The source object was deleted (or replaced) before it could be read."""


class TransientError(TilerError):
    """A fault outside the input: worth retrying with backoff."""
