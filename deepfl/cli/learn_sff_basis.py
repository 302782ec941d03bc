"""Learns the SFF ICA feature detector from photographs shipped in installed packages and saves it.

    python -m deepfl.cli.learn_sff_basis --out deepfl/fr/data/sff_ica.npz --overwrite
    python -m deepfl.cli.learn_sff_basis --out /tmp/w.npz --compare_w_mat /path/to/SFF/W.mat

With --compare_w_mat (the authors' W.mat, never shipped) it also prints how close SFF with the learned basis
gets to SFF with the original one: max |difference| and SROCC over a sample of distorted pairs.
"""

from __future__ import annotations

import json
import os

from absl import flags

from deepfl.cli import app
from deepfl.fileio import atomic_output

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output .npz for the learned basis (key W).", required=True)
flags.DEFINE_integer(
    "num_patches", 18000, "Random patches (--patch_size square) to learn from (the original: 18000).", lower_bound=1
)
flags.DEFINE_integer("patch_size", 8, "Patch side in pixels (the original: 8).", lower_bound=2)
flags.DEFINE_integer(
    "num_components", 8, "Independent components kept, at most 3 x --patch_size^2 (the original: 8).", lower_bound=1
)
app.define_seed("Seed of patch sampling and FastICA.")
flags.DEFINE_boolean("overwrite", False, "Replace --out if it exists (otherwise the script refuses).")
flags.DEFINE_string(
    "compare_w_mat",
    None,
    "Optional: the authors' W.mat, to measure SFF agreement against it on --compare_images (both needed).",
)
app.require_file("compare_w_mat")
flags.DEFINE_string(
    "compare_images",
    None,
    "With --compare_w_mat: a folder of reference photos (not the training images; e.g. TID2013's reference_images), "
    "each distorted 40 ways for the comparison.",
)
app.require_folder("compare_images")
flags.register_multi_flags_validator(
    ["compare_w_mat", "compare_images"],
    lambda values: (values["compare_w_mat"] is None) == (values["compare_images"] is None),
    "--compare_w_mat and --compare_images go together: the comparison needs both",
)
flags.register_multi_flags_validator(
    ["num_components", "patch_size"],
    lambda values: values["num_components"] <= 3 * values["patch_size"] ** 2,
    "--num_components: at most 3 x --patch_size^2 (the dimension of a colour patch)",
)


def simple_distortions(image, rng):
    """Eight seeded distortion families x 5 levels (numpy/PIL/scipy), for dev comparisons: (name, image) pairs."""
    import io

    import numpy as np
    from PIL import Image
    from scipy import ndimage

    x = image.astype(np.float64)
    out = []
    for level in range(1, 6):
        out.append(("blur", ndimage.gaussian_filter(x, sigma=(0.5 * level, 0.5 * level, 0))))
        out.append(("noise", x + rng.normal(0, 3.0 * level, x.shape)))
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=[60, 40, 25, 12, 5][level - 1])
        out.append(("jpeg", np.asarray(Image.open(buffer).convert("RGB"), np.float64)))
        out.append(("contrast", (x - x.mean()) * (1 - 0.12 * level) + x.mean()))
        out.append(("brighten", x + 8.0 * level))
        gray = x.mean(axis=2, keepdims=True)
        out.append(("desaturate", gray + (x - gray) * (1 - 0.18 * level)))
        step = 4 * level + 4
        out.append(("quantize", np.floor(x / step) * step + step / 2))
        out.append(
            (
                "impulse",
                np.where(
                    rng.random(x.shape[:2])[..., None] < 0.004 * level,
                    rng.choice([0.0, 255.0], size=x.shape[:2])[..., None],
                    x,
                ),
            )
        )
    return [(name, np.clip(np.round(d), 0, 255).astype(np.uint8)) for name, d in out]


def compare(w_ours, w_mat_path: str, seed: int) -> dict:
    """SFF with our basis vs the original basis on distorted versions of the images in --compare_images."""
    import numpy as np
    from scipy.stats import spearmanr

    from deepfl.fr import sff
    from deepfl.fr.sff_basis import load_basis
    from deepfl.images import list_images, read_image

    w_orig = load_basis(w_mat_path)
    rng = np.random.default_rng(seed)
    refs, dists, kinds = [], [], []
    for path in list_images(FLAGS.compare_images, "copy their images into the folder itself"):
        image = read_image(path)
        for name, distorted in simple_distortions(image, rng):
            refs.append(image)
            dists.append(distorted)
            kinds.append(name)
    ref, dist = np.stack(refs), np.stack(dists)
    ours, orig = [], []
    for start in range(0, len(ref), 16):
        r = ref[start : start + 16].astype(np.float32)
        d = dist[start : start + 16].astype(np.float32)
        ours.append(sff(r, d, w=w_ours).numpy())
        orig.append(sff(r, d, w=w_orig).numpy())
    ours, orig = np.concatenate(ours), np.concatenate(orig)
    return {
        "pairs": int(len(ours)),
        "srocc": float(spearmanr(ours, orig)[0]),
        "max_abs_diff": float(np.max(np.abs(ours - orig))),
        "mean_abs_diff": float(np.mean(np.abs(ours - orig))),
        "distortions": sorted(set(kinds)),
    }


def main(argv: list[str]) -> None:
    del argv
    from deepfl.fr.sff_basis import embedded_training_images, learn_sff_basis, save_basis

    if os.path.exists(FLAGS.out) and not FLAGS.overwrite:
        raise ValueError(f"out: {FLAGS.out} exists; pass --overwrite to replace it")
    images = embedded_training_images()
    w = learn_sff_basis(
        [image for _, image in images], FLAGS.num_patches, FLAGS.patch_size, FLAGS.num_components, FLAGS.seed
    )
    with atomic_output(FLAGS.out, suffix=".tmp.npz") as tmp:  # a killed run never leaves a truncated basis
        save_basis(
            tmp,
            w,
            images=",".join(name for name, _ in images),
            num_patches=FLAGS.num_patches,
            patch_size=FLAGS.patch_size,
            num_components=FLAGS.num_components,
            seed=FLAGS.seed,
            made_by="deepfl.cli.learn_sff_basis (sklearn FastICA, parallel, logcosh)",
        )
    print(f"saved W {w.shape} to {FLAGS.out}")
    if FLAGS.compare_w_mat:
        print(json.dumps(compare(w, FLAGS.compare_w_mat, FLAGS.seed), indent=1))


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
