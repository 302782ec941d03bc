"""Exceptions with one-line messages that name the culprit (file, row, argument)."""

import re


class DeepflError(Exception):
    """Base class of every error deepfl raises on purpose."""


class ImageReadError(DeepflError, ValueError):
    """An image file is missing, unreadable, corrupt or of an unsupported layout."""


class TableError(DeepflError, ValueError):
    """A CSV/metadata file is missing, malformed, or holds a bad row."""


class NoUsableInput(DeepflError, ValueError):
    """Every input of a job is unusable (unreadable, or smaller than a crop): it can do none of its work. The
    scripts exit with code 3 on it, as on every other job that did nothing."""


class WorkerLost(DeepflError):
    """A worker of a multi-worker run lost contact with another (stopped, killed, or cut off by the network): not
    about the inputs, so the scripts exit with code 1; every worker's rerun resumes after the last saved epoch."""


def failure_reason(exc: BaseException) -> str:
    """The informative line of a (possibly multi-line TensorFlow) error message, for a one-line report: the first
    root error's text ("(0) INVALID_ARGUMENT: Incompatible shapes: ...") when there is one, else the last line that
    is not a node reference, a traceback line or TensorFlow's tally ("0 derived errors ignored.")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        root = re.match(r"^\(\d+\) [A-Z_]+:\s*(.+)$", line)
        if root:
            return root.group(1)
    tally = re.compile(r"^\d+ (successful operations|derived errors ignored|root error\(s\) found)")
    return next(
        (line for line in reversed(lines) if not line.startswith(("[[", "File", "Detected")) and not tally.match(line)),
        type(exc).__name__,
    )


MAX_MESSAGE_CHARS = 300


def one_line(exc: BaseException, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`exc`'s message as one line of at most `limit` characters, for a report on stderr.

    The first line of the message (whitespace collapsed), or, for TensorFlow's multi-line "...error:" header,
    the line that says what failed (`failure_reason`); a longer line is cut and ends in "...". Messages that
    embed tensor values (hundreds of lines) are reduced the same way.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = failure_reason(exc) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def first_few(names: list[str], count: int = 3) -> str:
    """The first `count` names, comma-separated, and how many more: what a message lists of a long list."""
    return ", ".join(names[:count]) + (f" and {len(names) - count} more" if len(names) > count else "")
