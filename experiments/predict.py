"""deepfl-predict: quality scores of images, folders or glob patterns with a trained DeepFL-IQA model.

  deepfl-predict --model deepfl_iqa.keras photo.jpg more_photos/ 'shots/*.png'
  deepfl-predict --model multitask.keras --head head_split0.keras --output scores.csv images/

Prints a table (image, score; higher is better) or writes CSV/JSON (by --output's extension or --format).
Unreadable files are reported by name on stderr and the exit code is 1 at the end; the others are still scored.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from experiments import cli

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


def _render(rows: list[tuple[str, float]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{"image": image, "score": score} for image, score in rows], indent=1) + "\n"
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "score"])
        writer.writerows((image, f"{score:.6f}") for image, score in rows)
        return buffer.getvalue()
    width = max([len("image")] + [len(image) for image, _ in rows])
    lines = [f"{'image':<{width}}  score", f"{'-' * width}  --------"]
    lines += [f"{image:<{width}}  {score:.4f}" for image, score in rows]
    return "\n".join(lines) + "\n"


def _score_by_size(scorer, images: list, names: list[str], failed: list[str]) -> list[tuple[str, float]]:
    """Scores images one size at a time, so a size the model cannot take (e.g. 1x1, below its receptive field)
    fails only its own images, each named on stderr; returns (name, score) rows in input order."""
    import tensorflow as tf

    from deepfl.prediction import score_arrays

    scores: dict[int, float] = {}
    for shape in dict.fromkeys(image.shape for image in images):
        group = [i for i, image in enumerate(images) if image.shape == shape]
        try:
            values = score_arrays(scorer, [images[i] for i in group], FLAGS.batch_size)
        except (ValueError, tf.errors.OpError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = next((line for line in reversed(lines) if not line.startswith(("[[", "File", "Detected"))),
                          type(exc).__name__)
            for i in group:
                failed.append(names[i])
                print(f"error: {names[i]}: cannot be scored at {shape[1]}x{shape[0]} ({reason})", file=sys.stderr)
            continue
        scores.update(zip(group, values.tolist()))
    return [(names[i], scores[i]) for i in sorted(scores)]


def main(argv: list[str]) -> int:
    from deepfl.errors import ImageReadError
    from deepfl.images import atomic_write_bytes, read_image
    from deepfl.jobs import iter_batches, progress
    from deepfl.prediction import expand_inputs, load_scorer

    inputs = argv[1:]
    if not inputs:
        raise ValueError("images: name at least one image, folder or glob pattern after the flags")
    fmt = FLAGS.format
    if fmt is None:
        suffix = (FLAGS.output or "").lower().rsplit(".", 1)[-1]
        fmt = suffix if FLAGS.output and suffix in ("csv", "json") else ("csv" if FLAGS.output else "table")
    paths = expand_inputs(inputs)
    scorer = load_scorer(FLAGS.model, FLAGS.head)
    rows: list[tuple[str, float]] = []
    failed: list[str] = []
    with progress(total=len(paths), desc="scoring", unit="img") as bar:
        for chunk in iter_batches(paths, FLAGS.chunk):
            images, names = [], []
            for path in chunk:
                try:
                    images.append(read_image(path))
                    names.append(path)
                except ImageReadError as exc:
                    failed.append(path)
                    print(f"error: {exc}", file=sys.stderr)
            rows.extend(_score_by_size(scorer, images, names, failed))
            bar.update(len(chunk))
    text = _render(rows, fmt)
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
    cli.run_app(main)


if __name__ == "__main__":
    run()
