"""deepfl-extract-features: MLSP features of a data set, cached in HDF5. MLSP (multi-level spatially pooled): the
outputs of many blocks averaged over the image and concatenated; 16,928 floats per image from the 43 inception
blocks of the paper's InceptionResNetV2, 432 from the 5 stages of the demo's small CNN.

  deepfl-extract-features --dataset kadid10k --data_dir ~/data/kadid10k --model multitask.keras --out_dir feats
  deepfl-extract-features --images ~/photos --out_dir feats                # ImageNet backbone (paper baseline)
  deepfl-extract-features --dataset kadid10k --data_dir ~/data/kadid10k --weights quality-mlsp-mtl-mse-loss.hdf5 \\
      --out_dir feats                                                      # the authors' released weights

Every image goes through the backbone whole, at native resolution, in float32 (images of equal size share a
batch; --extract_dtype mixed_bfloat16 only on request); the cache `<out_dir>/<name>.h5` is keyed by absolute
image path and resumable: a restarted run extracts only the images not yet committed, and a kill loses at most
the batch in flight. Without network, --weights imagenet needs Keras' weights file in $KERAS_HOME/models
(default ~/.keras/models); the error line names it.
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags

from deepfl.cli import app, extraction_flags

FLAGS = flags.FLAGS
app.define_out_dir()
app.define_on_error(
    "an unreadable image; a row of --dataset's score table naming a missing image stops the job either way"
)
flags.DEFINE_string(
    "dataset",
    None,
    "Data set key (kadid10k, live, csiq, tid2013, koniq10k, clive, kadis700k), or ratings: your own rated "
    "images (--data_dir holds ratings.csv).",
)
flags.DEFINE_string("data_dir", None, "Folder of --dataset, as distributed.")
app.define_dataset_option()
flags.DEFINE_string(
    "images",
    None,
    "Instead of --dataset: a folder of images (every image directly inside it is extracted; subfolders are not "
    "searched), or a glob pattern in quotes that reaches them, e.g. 'photos/**/*.jpg'.",
)
app.require_folder("data_dir")
app.require_folder("images", patterns=True)
extraction_flags.define_extraction_flags()
app.require_file("model")
flags.DEFINE_string("name", None, "Cache file name (without .h5); default: the data set or folder name.")
flags.DEFINE_integer("batch_size", 8, "Images of equal size per forward pass.", lower_bound=1)


def main(argv: list[str]) -> int:
    from deepfl import features
    from deepfl.data import canonical_name, read_dataset, reader_options
    from deepfl.images import expand_inputs, is_file_or_broken_link, list_images, pattern_folder
    from deepfl.jobs import ErrorPolicy

    if bool(FLAGS.dataset) == bool(FLAGS.images):
        raise ValueError("dataset: give either --dataset with --data_dir, or --images")
    if FLAGS.dataset:
        if not FLAGS.data_dir:
            raise ValueError("data_dir: --dataset needs --data_dir")
        options = reader_options(FLAGS.dataset, FLAGS.dataset_option)
        paths = read_dataset(FLAGS.dataset, FLAGS.data_dir, **options)["image"].astype(str).tolist()
        name = FLAGS.name or canonical_name(FLAGS.dataset)  # --dataset CSIQ writes csiq.h5, as the docs name it
    else:
        if FLAGS.dataset_option:
            raise ValueError("dataset_option: --dataset_option goes with --dataset, not with --images")
        if os.path.isdir(FLAGS.images):
            paths = features.listed_cache_paths(list_images(FLAGS.images))
            if not paths:
                raise app.NothingDone(
                    f"--images {FLAGS.images}: no image in this folder (subfolders are not searched; a pattern in "
                    f"quotes reaches them, e.g. '{os.path.join(FLAGS.images, '**', '*.jpg')}')"
                )
            name = FLAGS.name or Path(FLAGS.images).resolve().name
        else:  # a glob pattern (the flag's check lets only an existing folder or a pattern through)
            paths = features.listed_cache_paths(
                Path(p) for p in expand_inputs([FLAGS.images]) if is_file_or_broken_link(Path(p))
            )
            if not paths:
                raise app.NothingDone(f"--images {FLAGS.images}: no file matches this pattern")
            name = FLAGS.name or pattern_folder(FLAGS.images).resolve().name
    extract = extraction_flags.extractor_arguments()
    source = features.extractor_source(**extract)
    cache = Path(FLAGS.out_dir) / f"{name}.h5"
    policy = ErrorPolicy(FLAGS.on_error)
    if features.holds_every_image(cache, paths, source):  # a finished run's rerun: no model to load
        stats = {"written": 0, "done": len(set(paths))}
    else:
        extractor = features.load_extractor(**extract)
        stats = features.extract_to_cache(extractor, paths, cache, FLAGS.batch_size, source=source, policy=policy)
    print(f"{cache}: {stats['written']} extracted, {stats['done']} already cached, {policy.summary('images')}")
    if policy.count and not stats["written"] and not stats["done"]:
        raise app.NothingDone(f"no image was extracted: all {policy.count} were skipped (first: {policy.problems[0]})")
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
