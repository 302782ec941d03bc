"""deepfl-export: one `.keras` file that scores images, from a trained stage-1 model and an MLP head.

  deepfl-export --model runs/stage1/model.keras --head mlp/kadid10k_head_split0.keras --output deepfl_iqa.keras
  deepfl-export --model quality-mlsp-mtl-mse-loss.hdf5 --head head.keras --output deepfl_iqa.keras

--model is the multi-task model of deepfl-train-multitask (its MLSP extractor is used, at any input size), a
backbone weights file such as the authors' Keras 2 `quality-mlsp-mtl-mse-loss.hdf5`, or `imagenet` (the paper's
ImageNet baseline, for a head trained on features extracted without --model); --head is an MLP head of
deepfl-train-mlp (the normalizer file beside it, <name>.normalizer.json for <name>.keras, maps outputs back to
the head's target scale). The output takes RGB images in [0, 255] and gives one score per image; it loads with
`keras.saving.load_model` alone (deepfl's own layers are replaced by built-in ones) and is what `deepfl-predict
--model` takes. What it was made from (paths and content fingerprints of --model, --head and its normaliser) is
stored beside it in <output>.settings.json: the same command again finds it done (exit 0), also with the same
files copied or moved elsewhere (compared by content); an existing --output made from other files, or without
that record, is refused (exit 2, naming what differs) unless --overwrite.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from deepfl.architectures import IMAGENET
from deepfl.cli import app

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    None,
    "Trained multi-task model (.keras), a backbone weights file (.h5/.hdf5), or imagenet: the backbone with Keras' "
    "ImageNet weights, for a head trained on the paper's baseline features (deepfl-extract-features without "
    "--model; offline, Keras' weights file must be in its cache).",
    required=True,
)
flags.DEFINE_string(
    "head",
    None,
    "MLP head (.keras) trained on MLSP features of --model (checked where deepfl-train-mlp and "
    "deepfl-extract-features recorded which model that was).",
    required=True,
)
app.require_file("model", names=(IMAGENET,))
app.require_file("head")
flags.DEFINE_string("output", None, "The one-file scorer to write (.keras).", required=True)
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")


def _sources() -> dict[str, str | None]:
    """--model, --head and the head's normaliser as 'absolute path (fingerprint)'; None for a missing file (the
    export then names it)."""
    from deepfl.fileio import describe_file, normalizer_path

    def described(path: Path) -> str | None:
        return describe_file(path) if path.is_file() else None

    head = Path(FLAGS.head)
    return {
        "model": IMAGENET if FLAGS.model == IMAGENET else described(Path(FLAGS.model)),
        "head": described(head),
        "normalizer": described(normalizer_path(head)),
    }


def _same_inputs(stored: dict, current: dict[str, str | None]) -> bool:
    """Whether an earlier export's record matches this one: the output unchanged since, and the inputs with the
    same contents (a model or head copied or moved elsewhere is the same input)."""
    return _changed_inputs(stored, current) == [] and stored.get("output") == current["output"]


def _changed_inputs(stored: dict, current: dict[str, str | None]) -> list[str]:
    from deepfl.fileio import by_content

    def content(value) -> str | None:
        return by_content(value) if isinstance(value, str) else None

    return [key for key in ("model", "head", "normalizer") if content(stored.get(key)) != content(current[key])]


def _difference(stored: dict, current: dict[str, str | None]) -> str:
    """What differs between the record of an earlier export and this one, for the refusal's one line."""
    if stored.get("output") != current["output"]:
        return "changed since its export"
    labels = {"model": "--model", "head": "--head", "normalizer": "normaliser of --head"}
    changed = _changed_inputs(stored, current)
    if not changed:
        return "made from other files"
    key = changed[0]
    if current[key] is None and stored.get(key):
        return f"made with the {labels[key]} {stored[key]}, which is missing now"
    from deepfl.fileio import described_path

    def differing(key: str) -> str:
        if described_path(stored.get(key)) == described_path(current[key]):  # the same file, rewritten since
            return f"{labels[key]} {described_path(current[key])} as it was before it changed"
        # both named: the earlier file alone read like the one this command gives (walk 39)
        return f"another {labels[key]} ({stored.get(key) or 'none'} then, {described_path(current[key])} now)"

    return "made from " + " and ".join(differing(key) for key in changed)


def main(argv: list[str]) -> int:
    del argv
    from deepfl.fileio import atomic_write_bytes, file_fingerprint

    output = Path(FLAGS.output)
    if output.suffix != ".keras":
        raise ValueError(f"output: must end with .keras, got {output}")
    record = output.with_name(output.name + ".settings.json")
    if output.exists() and not FLAGS.overwrite:
        try:
            stored = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        # (the inputs are hashed only when there is a record to compare them with)
        current = {**_sources(), "output": file_fingerprint(output)} if isinstance(stored, dict) else None
        if current is not None and _same_inputs(stored, current):
            print(f"{output}: already exported from this --model and --head; nothing to do")
            return 0
        raise ValueError(
            f"output: {output} exists"
            + (f", {_difference(stored, current)}" if current is not None else ", with no record of its making")
            + "; pass --overwrite to replace it, or choose another --output"
        )
    sources = _sources()
    from deepfl.export import export_model  # TensorFlow: not for a rerun that finds the export done

    # (an existing --output was refused above, unless --overwrite)
    path = export_model(FLAGS.model, FLAGS.head, output, overwrite=FLAGS.overwrite)
    stored = {**sources, "output": file_fingerprint(path)}
    atomic_write_bytes(record, (json.dumps(stored, indent=1) + "\n").encode("utf-8"))
    print(f"exported {path} (image -> score; loads with keras.saving.load_model alone)")
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
