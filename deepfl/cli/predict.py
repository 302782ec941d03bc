"""deepfl-predict: quality scores of images, folders or glob patterns with a trained DeepFL-IQA model.

  deepfl-predict --model deepfl_iqa.keras photo.jpg more_photos/ 'shots/*.png'
  deepfl-predict --model runs/stage1/model.keras --head mlp/kadid10k_head_split0.keras --output scores.csv images/

A folder gives the images directly inside it (subfolders are not searched; a quoted pattern with ** reaches
them: 'photos/**/*.jpg'). Prints a table (image, score; higher is better) or writes CSV/JSON (by --output's
extension or --format).
Scores are on the scale the head was trained on: for deepfl-train-mlp's heads (default protocol) the normalised
[0, 1] scale (1 = best quality), not the benchmark's own MOS/DMOS scale; for --protocol authors_demo heads the
data set's published scale and direction (e.g. KADID-10k DMOS 1..5, higher is better; LIVE DMOS, lower is
better); for the demo's model its stand-in target's (--target standin_dmos: DMOS 1..5; standin_level: 0..1;
higher is better). Unreadable files are reported by name on stderr and the exit code is 1 at the end; the others
are still scored (exit 3 when no file could be scored). An interrupted run resumes only into a CSV --output.

A CSV --output is written as the images are scored and resumes: a rerun with the same --model/--head (stored in
<output>.settings.json) scores only the files not yet in it and appends them, so a kill loses at most one chunk.
Its rows name each image by its absolute path, so a rerun from another folder resumes it too; the table and a
JSON --output (written whole at the end, no resume) name each image as the command line reached it.
Another model into the same CSV, or an existing JSON --output, is refused (exit 2) unless --overwrite.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from absl import flags

from deepfl.architectures import IMAGENET
from deepfl.cli import app

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    None,
    "Exported one-file model (.keras: image -> score), or, when --head is given, the trained multi-task model, a "
    "backbone weights file, or imagenet (the backbone with Keras' ImageNet weights, for a head trained on the "
    "paper's baseline features).",
    required=True,
)
flags.DEFINE_string(
    "head",
    None,
    "MLP head (.keras) trained on MLSP features of --model; the normalizer file beside it (the head's name with "
    "the .keras ending replaced: head_split0.keras -> head_split0.normalizer.json) is applied.",
)
app.require_file("model", names=(IMAGENET,))
app.require_file("head")
flags.DEFINE_string(
    "output",
    None,
    "Write the scores here (.csv or .json) instead of printing a table. A CSV "
    "is written as images are scored and a rerun resumes it.",
)
flags.DEFINE_enum(
    "format", None, ["table", "csv", "json"], "Output format (default: from --output's extension, else a table)."
)
flags.DEFINE_bool("overwrite", False, "Replace an existing --output instead of resuming (CSV) or refusing.")
flags.DEFINE_integer("batch_size", 8, "Images of equal size scored together.", lower_bound=1)
flags.DEFINE_integer("chunk", 256, "Images read into memory (and written to a CSV --output) at a time.", lower_bound=1)

EXIT_SOME_UNREADABLE = 1
CSV_COLUMNS = ["image", "score"]


def check_image_model(scorer, model_path: str) -> None:
    """One error for a model that does not take images (e.g. an MLP head given as --model)."""
    shape = getattr(scorer, "input_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3):
        raise ValueError(
            f"model: {model_path} takes inputs of shape {shape}, not RGB images; an MLP head goes to "
            "--head, with the multi-task model (or use an exported one-file model) as --model"
        )


def main(argv: list[str]) -> int:
    from deepfl.fileio import atomic_write_bytes, file_fingerprint
    from deepfl.jobs import AppendOnlyCsv, check_settings, settings_beside

    inputs = argv[1:]
    if not inputs:
        raise ValueError("images: name at least one image, folder or glob pattern after the flags")
    output = Path(FLAGS.output) if FLAGS.output else None
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    fmt = FLAGS.format
    if fmt is None and output is not None:
        fmt = suffix
        if fmt not in ("csv", "json"):
            raise ValueError(
                f"output: {FLAGS.output} ends in neither .csv nor .json; rename it, or pass --format=csv or json"
            )
    fmt = fmt or "table"
    if suffix in ("csv", "json") and suffix != fmt:
        raise ValueError(f"output: {FLAGS.output} ends in .{suffix} but --format={fmt}; make them agree")
    if output is not None and output.is_dir():
        raise ValueError(f"output: {output} is a folder; name a file (.csv or .json)")
    if output is not None and fmt != "csv" and output.exists() and not FLAGS.overwrite:
        raise ValueError(f"output: {output} exists; pass --overwrite to replace it (a CSV --output resumes instead)")
    if output is None or fmt != "csv":
        app.nothing_to_resume()  # the scores are printed (or written as JSON) at the end: nothing to resume from
    from deepfl.images import expand_inputs

    paths = expand_inputs(inputs)
    if not paths:
        raise app.NothingDone(
            f"no image found in {' '.join(inputs)} (a folder's images are listed without its subfolders)"
        )

    def load() -> Any:
        # TensorFlow's import (seconds) only now: a Ctrl-C during it already gets the line that fits this run, and a
        # CSV rerun that finds every image scored needs neither it nor the model
        from deepfl.prediction import load_scorer

        loaded = load_scorer(FLAGS.model, FLAGS.head)
        check_image_model(loaded, FLAGS.model)
        return loaded

    def report(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)

    unreadable: list[str] = []  # named before the model is loaded (missing, empty, not images), never scored

    def screen(candidates: list[str]) -> list[str]:
        """The candidates whose header reads; the others are reported once and kept in `unreadable`."""
        from deepfl.images import header_errors

        readable = []
        for path, problem in zip(candidates, header_errors(candidates), strict=True):
            if problem is None:
                readable.append(path)
            else:
                report(problem)
                unreadable.append(path)
        return readable

    def nothing_scored() -> app.NothingDone:
        return app.NothingDone(f"no image could be scored: all {len(paths)} file(s) failed (listed above)")

    resumable = output is not None and fmt == "csv"
    imagenet = FLAGS.model == IMAGENET  # the ImageNet backbone: a name, not a file
    given = [*([] if imagenet else [FLAGS.model]), *([FLAGS.head] if FLAGS.head else [])]
    # The model is loaded first (a missing or wrong file named before any settings are stored), except for a rerun
    # into a CSV of this command, whose settings are stored already: it loads the model only to score what is left.
    # Files that cannot be images are named before either, so a run that has none to score loads no model.
    rerun = resumable and not FLAGS.overwrite and output.exists() and settings_beside(output).exists()
    to_score = paths if rerun else screen(paths)  # a rerun screens only what its CSV lacks, below
    if not to_score:
        raise nothing_scored()
    scorer = None if rerun and all(Path(path).is_file() for path in given) else load()
    if resumable:
        settings = {  # the files' fingerprints too: a model re-exported under the same name is another model
            "model": IMAGENET if imagenet else str(Path(FLAGS.model).resolve()),
            "model_content": None if imagenet else file_fingerprint(FLAGS.model),
            "head": str(Path(FLAGS.head).resolve()) if FLAGS.head else None,
            "head_content": file_fingerprint(FLAGS.head) if FLAGS.head else None,
        }
        if FLAGS.overwrite:
            output.unlink(missing_ok=True)
        elif output.exists() and not settings_beside(output).exists():
            raise ValueError(
                f"output: {output} exists and was not written by deepfl-predict with stored settings; "
                "pass --overwrite to replace it, or choose another --output"
            )
        # (a record whose CSV was deleted protects nothing: other settings then start a new CSV)
        check_settings(
            settings_beside(output), settings, FLAGS.overwrite, output=f"--output {output}", holds_work=output.exists()
        )
        table = AppendOnlyCsv(output, CSV_COLUMNS, key="image", errors="surrogateescape", lock=True)
        # Rows name absolute paths, so a rerun from another folder, or with the same file spelled another way
        # (./a.png, dir/../a.png), resumes instead of scoring it twice (or skipping another file of that name).
        # The files keep the spelling they were given in every line about them; the rows take the absolute path.
        done = {os.path.abspath(name) for name in table.done}
        pending: dict[str, str] = {}
        for path in to_score:
            key = os.path.abspath(path)
            if key not in done:
                pending.setdefault(key, path)
        todo = list(pending.values())
        already = len(paths) - len(unreadable) - len(todo)
        if rerun:
            todo = screen(todo)
        # (on a rerun the files that cannot be read were named just above, before this line counts them)
        cannot = f", {len(unreadable)} cannot be read (named above)" if unreadable else ""
        if not todo and not unreadable:
            print(f"{output}: all {len(paths)} images already scored, nothing to do", file=sys.stderr)
        elif not todo:
            print(f"{output}: {already} of {len(paths)} images already scored{cannot}, none left", file=sys.stderr)
        elif already:
            print(
                f"{output}: {already} of {len(paths)} images already scored{cannot}, scoring the other {len(todo)}",
                file=sys.stderr,
            )
        failed = []
        if todo:
            from deepfl.prediction import score_files

            _, failed = score_files(
                todo,
                scorer if scorer is not None else load(),
                FLAGS.batch_size,
                FLAGS.chunk,
                on_unreadable=report,
                on_rows=lambda rows: table.append(
                    {"image": os.path.abspath(image), "score": f"{score:.6f}"} for image, score in rows
                ),
            )
        print(f"{output}: {len(table.done)} scores", file=sys.stderr)
        if not table.done:
            raise nothing_scored()
    else:
        from deepfl.prediction import format_scores, score_files

        rows, failed = score_files(to_score, scorer, FLAGS.batch_size, FLAGS.chunk, on_unreadable=report)
        if not rows:
            raise nothing_scored()
        text = format_scores(rows, fmt)
        # A file name that is not UTF-8 (held with surrogate escapes) is written back as its original bytes.
        data = text.encode("utf-8", "surrogateescape")
        if output is not None:
            atomic_write_bytes(output, data)
            print(f"wrote {len(rows)} scores to {output}", file=sys.stderr)
        elif getattr(sys.stdout, "buffer", None) is not None:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
    failed = unreadable + failed
    if failed:
        print(
            f"error: {len(failed)} of {len(paths)} file(s) could not be read or scored (listed above)", file=sys.stderr
        )
        return EXIT_SOME_UNREADABLE
    return 0


def run() -> None:
    app.run_app(main, takes_arguments=True)


if __name__ == "__main__":
    run()
