"""Generates a KADIS-style distorted set: every pristine image gets one distortion type at all 5 levels.

Output: `<ref stem>_<TT>_<LL>.<ext>` in --out_dir and a manifest CSV `dist_im, ref_im, dist_type, dist_level`
(names relative to --out_dir and --ref_dir). The type per image comes from --assignment_csv (the
`kadis700k_ref_imgs.csv` layout: first column reference file name, second column type: number or name) or, without one,
is drawn per image from --seed. Every random draw is seeded by (--seed, reference name), so results do not
depend on sharding, worker count or restarts. A killed run restarted with the same flags finishes the rest:
images are written atomically and the manifest is append-only, keyed by `dist_im`. A rerun with other settings
(seed, resize, format, ...) into the same --out_dir is refused (exit 2) unless --overwrite.
Exit code 3: nothing distorted (an empty --ref_dir, or every reference bad).

With --resize the resized references are written too, as `references/<ref stem>.png` in --out_dir, and the
manifest names them (relative to --out_dir), so `deepfl-label --image_root <out_dir>` finds them without
--ref_root.

Examples:
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --seed 0 --resize   # PNG, all cores
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --num_shards 4 --shard_index 2   # one machine's share
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --num_shards 4 --merge   # joins the 4 shard manifests
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from deepfl.cli import app

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "ref_dir",
    None,
    "Folder of pristine reference images (the images directly in it; subfolders are not searched).",
    required=True,
)
app.require_folder("ref_dir")
flags.DEFINE_string(
    "assignment_csv",
    None,
    "Optional CSV in the kadis700k_ref_imgs.csv layout: column 1 reference file name (in "
    "--ref_dir), column 2 distortion type: its number 1..25 or its name, e.g. jpeg2000 or 'lens blur' (a header "
    "row is allowed). Without it every "
    "image in --ref_dir gets a random type drawn from --seed.",
)
app.define_seed("Seed of every random draw (type choice and random distortions).")
flags.DEFINE_bool(
    "resize",
    False,
    "Resize (covering, Lanczos) and centre-crop references to 512x384 as KADIS "
    "did (384x512 for portrait images) before distorting.",
)
flags.DEFINE_enum("format", "png", ["png", "bmp"], "Output image format (the KADIS release used bmp).")
flags.DEFINE_integer(
    "png_compression",
    1,
    "Deflate level of PNG output: 1 (default) is the fastest compression (Paeth filter + Huffman-only "
    "deflate); 0 stores raw (about twice the size); 2-9 use libdeflate (zlib without it) with the up filter: "
    "a few percent smaller, several times slower. Measured sizes and times: docs/distortions.md. Refused with "
    "--format bmp.",
    lower_bound=0,
    upper_bound=9,
)
flags.DEFINE_string(
    "manifest",
    None,
    "Manifest CSV path (default: <out_dir>/manifest.csv). A shard writes <stem>-<shard_index>-of-<num_shards>.csv "
    "beside it, and --merge (given the same --manifest) joins the shards' into it.",
)
flags.DEFINE_integer(
    "workers",
    None,
    "Worker processes (default: one per core this job may use: its affinity mask, at most a container's CPU quota).",
    lower_bound=1,
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Discard what an earlier run with other settings wrote to --out_dir (its "
    "manifests, the images they list, references/) and start again.",
)
app.define_out_dir()
app.define_sharding(
    "Join the --num_shards shard manifests in --out_dir into manifest.csv (one header, the order of an unsharded "
    "run) and stop."
)
app.define_on_error(
    "an unreadable or too small reference image; a bad row of --assignment_csv stops the job before any work, "
    "whichever is chosen"
)


def main(argv: list[str]) -> int | None:
    del argv
    # Imported here, not at the top: a Ctrl-C while they load (Numba, Pillow) is then the job's one line.
    from deepfl import generation
    from deepfl.images import list_images

    if FLAGS.merge:
        target, rows, missing = generation.merge(
            FLAGS.ref_dir,
            FLAGS.out_dir,
            FLAGS.num_shards,
            FLAGS.seed,
            FLAGS.assignment_csv,
            FLAGS.format,
            FLAGS.manifest,
            FLAGS.on_error,
        )
        print(
            f"merged {FLAGS.num_shards} shard manifests into {target}: {rows} rows, {len(missing)} expected images "
            "without a row"
            + (
                f" (first: {missing[0]}; its reference was skipped as bad, or its shard has not finished)"
                if missing
                else ""
            )
        )
        return 0
    if FLAGS.format != "png" and FLAGS["png_compression"].present:
        raise ValueError(f"--png_compression: applies to --format png only, not {FLAGS.format}")
    if (
        not FLAGS.assignment_csv
        and Path(FLAGS.ref_dir).is_dir()
        and not list_images(FLAGS.ref_dir, generation.nested_references_hint())
    ):
        raise app.NothingDone(f"--ref_dir {FLAGS.ref_dir}: no image in this folder (subfolders are not searched)")
    summary = generation.generate(
        FLAGS.ref_dir,
        FLAGS.out_dir,
        seed=FLAGS.seed,
        assignment_csv=FLAGS.assignment_csv,
        resize=FLAGS.resize,
        fmt=FLAGS.format,
        png_compression=FLAGS.png_compression,
        manifest=FLAGS.manifest,
        workers=FLAGS.workers,
        num_shards=FLAGS.num_shards,
        shard_index=FLAGS.shard_index,
        on_error=FLAGS.on_error,
        overwrite=FLAGS.overwrite,
    )
    print(summary)
    if summary.skipped and not summary.written and not summary.already_done:
        raise app.NothingDone(
            f"no image was distorted: all {summary.skipped} {summary.unit} were skipped as bad (each is named above)"
        )
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
