"""deepfl-predict: quality scores of images, folders or glob patterns with a trained DeepFL-IQA model.

  deepfl-predict --model deepfl_iqa.keras photo.jpg more_photos/ 'shots/*.png'
  deepfl-predict --model multitask.keras --head head_split0.keras --output scores.csv images/

Prints a table (image, score; higher is better) or writes CSV/JSON (by --output's extension or --format).
Unreadable files are reported by name on stderr and the exit code is 1 at the end; the others are still scored.
"""

from __future__ import annotations

import sys

from absl import flags

from deepfl.cli import app

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Exported one-file model (.keras: image -> score), or the trained multi-task "
                    "model when --head is given.", required=True)
flags.DEFINE_string("head", None, "MLP head (.keras) trained on MLSP features of --model; its "
                    "<head>.normalizer.json beside it is applied.")
flags.DEFINE_string("output", None, "Write the scores here (.csv or .json) instead of printing a table.")
flags.DEFINE_enum("format", None, ["table", "csv", "json"], "Output format (default: from --output's extension, "
                  "else a table).")
flags.DEFINE_integer("batch_size", 8, "Images of equal size scored together.", lower_bound=1)
flags.DEFINE_integer("chunk", 256, "Images read into memory at a time.", lower_bound=1)

EXIT_SOME_UNREADABLE = 1


def main(argv: list[str]) -> int:
    from deepfl.fileio import atomic_write_bytes
    from deepfl.prediction import expand_inputs, format_scores, load_scorer, score_files

    inputs = argv[1:]
    if not inputs:
        raise ValueError("images: name at least one image, folder or glob pattern after the flags")
    fmt = FLAGS.format
    if fmt is None:
        suffix = (FLAGS.output or "").lower().rsplit(".", 1)[-1]
        fmt = suffix if FLAGS.output and suffix in ("csv", "json") else ("csv" if FLAGS.output else "table")
    paths = expand_inputs(inputs)
    scorer = load_scorer(FLAGS.model, FLAGS.head)
    rows, failed = score_files(paths, scorer, FLAGS.batch_size, FLAGS.chunk,
                               on_unreadable=lambda message: print(f"error: {message}", file=sys.stderr))
    text = format_scores(rows, fmt)
    # A file name that is not UTF-8 (held with surrogate escapes) is written back as its original bytes.
    data = text.encode("utf-8", "surrogateescape")
    if FLAGS.output:
        atomic_write_bytes(FLAGS.output, data)
        print(f"wrote {len(rows)} scores to {FLAGS.output}", file=sys.stderr)
    elif getattr(sys.stdout, "buffer", None) is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(text)
    if failed:
        print(f"error: {len(failed)} of {len(paths)} file(s) could not be read (listed above)", file=sys.stderr)
        return EXIT_SOME_UNREADABLE
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
