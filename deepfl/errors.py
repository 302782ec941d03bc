"""Exceptions with one-line messages that name the culprit (file, row, argument)."""


class DeepflError(Exception):
    """Base class of every error deepfl raises on purpose."""


class ImageReadError(DeepflError, ValueError):
    """An image file is missing, unreadable, corrupt or of an unsupported layout."""


class TableError(DeepflError, ValueError):
    """A CSV/metadata file is missing, malformed, or holds a bad row."""
