"""Exceptions with one-line messages that name the culprit (file, row, argument)."""


class DeepflError(Exception):
    """Base class of every error deepfl raises on purpose."""


class ImageReadError(DeepflError, ValueError):
    """An image file is missing, unreadable, corrupt or of an unsupported layout."""


class TableError(DeepflError, ValueError):
    """A CSV/metadata file is missing, malformed, or holds a bad row."""


def failure_reason(exc: BaseException) -> str:
    """The last informative line of a (possibly multi-line TensorFlow) error message, for a one-line report."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in reversed(lines) if not line.startswith(("[[", "File", "Detected"))),
                type(exc).__name__)
