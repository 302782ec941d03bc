"""Scores every (reference, distorted) pair of a manifest with the FR metrics: the weak labels of DeepFL-IQA.

    deepfl-label --manifest out/manifest.csv --image_root out --ref_root refs --out_dir labels
    deepfl-label --manifest kadid10k/dmos.csv --image_root kadid10k/images --out_dir labels --metrics sff,gmsd
    deepfl-label ... --num_shards 4 --shard_index 2      # one machine's share; then:
    deepfl-label ... --num_shards 4 --merge              # joins the 4 shard files into labels.csv

Output: <out_dir>/<output_name> in the KADIS-700k layout (dist_im, ref_im, then the metric columns in the
order ssim, msssim, iwssim, mdsi, vsi, fsim, gmsd, sff, scqi, add_gsim, sr_sim), and beside it (the same name
with .png: labels.png by default) each metric's median score by distortion level, one line per type, when the
manifest has deepfl-distort's dist_type and dist_level columns. Re-running resumes: rows already written are
kept and never recomputed. Exit code 3 when the label CSV holds no row because every pair was skipped (wrong
--image_root, sizes that differ, images below a metric's minimum size); a rerun that finds rows done and only
known-bad pairs left exits 0.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from absl import flags

from deepfl.cli import app
from deepfl.labeling import COMPILE_FROM_PIXEL_PAIRS, PAIRS_PER_BATCH

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "manifest", None, "CSV of pairs: columns dist_im, ref_im (or KADID-10k's dist_img, ref_img).", required=True
)
flags.DEFINE_string("image_root", None, "Folder the dist_im names are relative to.", required=True)
flags.DEFINE_string(
    "ref_root",
    None,
    "Folder the ref_im names are relative to (default: the --ref_dir deepfl-distort recorded beside the manifest, "
    "for a run without --resize, else --image_root).",
)
app.require_folder("image_root")
app.require_folder("ref_root")
app.define_out_dir()
flags.DEFINE_string("output_name", "labels.csv", "File name of the label CSV inside --out_dir.")
flags.DEFINE_list("metrics", None, "Comma-separated subset of the eleven metrics (default: all eleven).")
flags.DEFINE_integer(
    "batch_size",
    PAIRS_PER_BATCH,
    "Pairs scored per metric call: the distorted images of one or more "
    "references of equal size (each reference decoded once and its reference-only work done "
    "once; KADIS: 5 references x 5 levels).",
    lower_bound=1,
)
flags.DEFINE_float(
    "compile_from_pixel_pairs",
    COMPILE_FROM_PIXEL_PAIRS,
    "An image size whose width x height x number of pairs in the manifest reaches this is scored by the metrics' "
    "TensorFlow-compiled graphs (compiling all eleven costs about 40 s per batch shape on 2 cores, then they run "
    "2-3x faster); any other size by their NumPy forms, which compile nothing (mixed sizes: LIVE, your own photos). "
    "0 compiles "
    "every size, inf none. A resumed run keeps it (stored with the CSV): the two paths differ in the last digits.",
    lower_bound=0,
)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Delete an existing output CSV made with other --metrics, --batch_size or --compile_from_pixel_pairs (the "
    "last two stored in <csv>.settings.json) and score again, instead of refusing. With --merge: drop the rows "
    "of an existing output CSV that no shard holds (kept by default). With --shard_index: also lets a shard of "
    "another --num_shards than the shard files already there run.",
)
app.define_sharding(
    "Join the --num_shards shard files into the final CSV (with the rows of an existing one that no shard holds, "
    "unless --overwrite) and stop."
)
app.define_on_error()


def _plot(labels_csv: str | os.PathLike) -> None:
    """Draws the labels' median by level, per metric and type, beside the CSV (`labels.png`), when the manifest
    names types and levels (deepfl-distort's does); a drawing newer than the CSV and the manifest is kept."""
    from deepfl import reporting

    path = Path(labels_csv).with_suffix(".png")
    what = "each metric's median score by distortion level, per type"
    inputs = (Path(labels_csv).stat().st_mtime, Path(FLAGS.manifest).stat().st_mtime)
    if path.exists() and path.stat().st_mtime >= max(inputs):
        print(f"{path}: {what} (up to date: no row and no manifest change since it was drawn)")
    elif reporting.plot_labels_by_level(labels_csv, FLAGS.manifest, path):
        print(f"{path}: {what}")


def _recorded_reference_folder() -> str | None:
    """Without --ref_root: the references' folder deepfl-distort recorded beside the manifest (its --ref_dir, for
    a run without --resize), said in one line; None when there is no such record."""
    from deepfl.generation import SETTINGS_FILE, recorded_reference_folder

    folder = recorded_reference_folder(FLAGS.manifest)
    record = Path(FLAGS.manifest).parent / SETTINGS_FILE
    if folder is None:
        return None
    if not folder.is_dir():
        logging.getLogger("deepfl").warning(
            "deepfl-distort's --ref_dir %s, recorded in %s, is gone: references are looked up in --image_root "
            "(--ref_root names their folder)",
            folder,
            record,
        )
        return None
    logging.getLogger("deepfl").info(
        "references are read from %s (deepfl-distort's --ref_dir, recorded in %s; --ref_root overrides it)",
        folder,
        record,
    )
    return str(folder)


def main(argv: list[str]) -> int:
    del argv
    from deepfl import labeling

    pairs = labeling.read_manifest(FLAGS.manifest)
    ref_root = FLAGS.ref_root if FLAGS.ref_root is not None else _recorded_reference_folder()
    out_csv = os.path.join(FLAGS.out_dir, FLAGS.output_name)
    if FLAGS.merge:
        path, missing = labeling.merge_shards(
            out_csv, FLAGS.num_shards, pairs, FLAGS.metrics, overwrite=FLAGS.overwrite
        )
        print(
            f"merged {FLAGS.num_shards} shards into {path}; {len(missing)} manifest pairs without a row"
            + (f" (first: {missing[0]})" if missing else "")
        )
        _plot(path)
        return 0
    summary = labeling.label_pairs(
        pairs,
        FLAGS.image_root,
        out_csv,
        metrics=FLAGS.metrics,
        ref_root=ref_root,
        batch_size=FLAGS.batch_size,
        num_shards=FLAGS.num_shards,
        shard_index=FLAGS.shard_index,
        on_error=FLAGS.on_error,
        compile_from_pixel_pairs=FLAGS.compile_from_pixel_pairs,
        overwrite=FLAGS.overwrite,
    )
    print(summary)
    if FLAGS.num_shards == 1 and (summary.written or summary.already_done):
        _plot(out_csv)
    if summary.skipped and not summary.written and not summary.already_done:
        first = summary.skipped[0]
        hint = (
            "; references are looked up in --image_root unless --ref_root names their folder"
            if ref_root is None and ", reference " in first and "no such image file" in first
            else ""
        )
        raise app.NothingDone(
            f"no pair was scored: all {len(summary.skipped)} pairs to do were skipped{hint} (first: {first})"
        )
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
