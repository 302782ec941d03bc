"""deepfl-train-mlp: the paper's MLP head on cached MLSP features, over N content-aware splits.

  deepfl-train-mlp --dataset kadid10k --data_dir ~/data/kadid10k --features feats/kadid10k.h5 --out_dir mlp_kadid
  deepfl-train-mlp ... --protocol authors_demo      # the authors' demo: lr 1e-3, raw DMOS targets, 5 splits

Per split: 60/20/20 by content (KonIQ-10k: its official split, as in the paper), targets z-scored on the
training rows, 30 epochs of Adam/MSE per candidate learning rate, best-validation checkpoint (the lr is chosen on
the first split's validation set and reused, --lr_selection=each chooses it per split); reports SROCC, PLCC
(plain and after a 4-parameter logistic), KROCC and RMSE per split and their median. Writes each split's head
(<dataset>_head_split<k>.keras, with its .normalizer.json: what deepfl-export and deepfl-predict --head take),
predictions.csv, per_split.csv, summary.csv/.md and scatter.png into --out_dir.
Scores, predictions and RMSE are on deepfl's normalised [0, 1] scale (1 = best quality), not on the
data set's own MOS/DMOS scale; with --protocol authors_demo they are on the published scale (raw DMOS/MOS, no
normaliser file), as in the authors' demo notebook.

The resolved settings are stored in mlp_settings.json: a rerun with the same ones prints the finished run's table
(or finishes an interrupted run, keeping the splits it had trained); a rerun with other ones exits 2 naming
each change, unless --overwrite.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from deepfl import paper
from deepfl.cli import app, protocol_flags

FLAGS = flags.FLAGS
app.define_out_dir()
flags.DEFINE_string(
    "dataset",
    None,
    "Data set key (kadid10k, live, csiq, tid2013, koniq10k, clive), or ratings: your own rated images "
    "(--data_dir holds ratings.csv with image,score[,content][,ref], and optionally ratings.json with the scale).",
    required=True,
)
flags.DEFINE_string("data_dir", None, "Folder of --dataset, as distributed.", required=True)
app.require_folder("data_dir")
app.define_dataset_option()
flags.DEFINE_string("features", None, "HDF5 feature cache from deepfl-extract-features.", required=True)
flags.DEFINE_integer("num_splits", paper.STAGE2_NUM_SPLITS, "Random content-aware splits.", lower_bound=1)
flags.DEFINE_bool(
    "official_split",
    None,
    "Train and test on the data set's official split (one split) instead of --num_splits random ones. Default: "
    "yes where the data set ships one (KonIQ-10k, with koniq10k_distributions_sets.csv), as the paper and "
    "deepfl-reproduce do; --noofficial_split gives random content splits there too.",
)
app.define_seed("Seed of the splits and of the head's initialisation.")
flags.DEFINE_integer("epochs", paper.STAGE2_EPOCHS, "Epochs per head (default: the paper's).", lower_bound=1)
flags.DEFINE_integer("batch_size", paper.STAGE2_BATCH_SIZE, "Mini-batch size.", lower_bound=1)
flags.DEFINE_list(
    "learning_rates", [f"{lr:g}" for lr in paper.STAGE2_LEARNING_RATES], "Candidates, chosen on validation."
)
protocol_flags.require_positive_learning_rates()
flags.DEFINE_enum(
    "lr_selection",
    "first",
    ["first", "each"],
    "Choose the lr on the first split and reuse it (cheaper), or on each split.",
)
protocol_flags.define_protocol_flag()
flags.DEFINE_list(
    "hidden",
    [str(units) for units in paper.STAGE2_HIDDEN],
    "Units of the head's hidden layers (default: the paper's). The paper's head overfits a few hundred to a few "
    "thousand rated images; a smaller one, e.g. --hidden=256 --dropout=0.5 --standardize_features (the demo's), "
    "suits such a study.",
)
app.require_numbers("hidden", "positive integers such as 2048,1024,256", lambda units: units >= 1, integers=True)
flags.DEFINE_list(
    "dropout",
    [f"{rate:g}" for rate in paper.STAGE2_DROPOUT],
    "Dropout rate after each hidden layer, one per --hidden layer (default: the paper's; with another --hidden, "
    "its pattern: 0.25 after each layer but the last, 0.5 after the last).",
)
app.require_numbers("dropout", "rates in [0, 1) such as 0.25,0.25,0.5", lambda rate: 0 <= rate < 1)
flags.DEFINE_bool(
    "standardize_features",
    False,
    "Z-score each feature on the split's training rows, inside the head (saved heads still take raw features); "
    "the paper's head does not.",
)
flags.DEFINE_bool("overwrite", False, "Redo the run in --out_dir, also with other settings than it was made with.")
flags.DEFINE_bool(
    "skip_uncached",
    False,
    "Train without the table's images that --features lacks (those deepfl-extract-features skipped as unreadable), "
    "naming how many, as deepfl-reproduce does; without it such a table is refused.",
)


def main(argv: list[str]) -> int:
    from deepfl.data import DATASETS, read_dataset, reader_options
    from deepfl.errors import NoUsableInput, first_few
    from deepfl.features import load_features, rows_with_features
    from deepfl.jobs import check_settings
    from deepfl.protocol_records import (
        MLP_SETTINGS_FILE,
        HeadConfig,
        discard_finished_splits,
        finished_on_these_inputs,
        holds_finished_splits,
        protocol_settings,
        table_splits,
    )

    out = Path(FLAGS.out_dir)
    chosen = protocol_flags.protocol_choice()
    options = reader_options(FLAGS.dataset, FLAGS.dataset_option)
    official = FLAGS.official_split
    if official is None:  # the paper's protocol (and deepfl-reproduce): KonIQ-10k on its official split
        official = bool(getattr(DATASETS.get(FLAGS.dataset), "has_official_split", False))
    settings = {
        "dataset": FLAGS.dataset,
        "data_dir": str(Path(FLAGS.data_dir).resolve()),
        "features": str(Path(FLAGS.features).resolve()),
        "num_splits": chosen["num_splits"],
        "official_split": official,
        "seed": FLAGS.seed,
        "epochs": chosen["epochs"],
        "batch_size": chosen["batch_size"],
        "learning_rates": chosen["learning_rates"],
        "lr_selection": FLAGS.lr_selection,
    }
    hidden = [int(units) for units in FLAGS.hidden]
    if FLAGS["dropout"].present:
        dropout = [float(rate) for rate in FLAGS.dropout]
    else:
        dropout = list(paper.stage2_dropout(len(hidden)))
    if len(dropout) != len(hidden):
        raise ValueError(
            f"--dropout: give one rate per --hidden layer ({len(hidden)} layers {FLAGS.hidden}, {len(dropout)} "
            f"rates {FLAGS.dropout})"
        )
    paper_head = hidden == list(paper.STAGE2_HIDDEN) and dropout == list(paper.STAGE2_DROPOUT)
    if not paper_head or FLAGS.standardize_features:  # records of earlier runs (the paper's head) stay valid
        settings.update(hidden=hidden, dropout=dropout, standardize_features=FLAGS.standardize_features)
    if options:  # settings stored by earlier runs (none of them) stay valid
        settings.update(dataset_options=options)
    if FLAGS.protocol != "paper":  # settings stored by earlier runs (paper protocol) stay valid
        settings.update(
            protocol=FLAGS.protocol,
            normalize_targets=chosen["normalize_targets"],
            target_column=chosen["target_column"],
        )
    # What the settings left out above mean, named in a refusal as such ("hidden [2048, 1024, 256] -> [256]").
    paper_protocol = protocol_settings("paper")
    defaults = {
        "hidden": list(paper.STAGE2_HIDDEN),
        "dropout": list(paper.STAGE2_DROPOUT),
        "standardize_features": False,
        "protocol": "paper",
        "normalize_targets": paper_protocol["normalize_targets"],
        "target_column": paper_protocol["target_column"],
        "dataset_options": {},
    }
    finished = (out / "summary.csv").exists() and not FLAGS.overwrite
    if finished:
        if not (out / MLP_SETTINGS_FILE).exists():
            raise ValueError(
                f"out_dir: {out} holds a finished run without stored settings (made by an older "
                "deepfl); use a new --out_dir, or --overwrite to redo it"
            )
        # (raises if they differ)
        check_settings(out / MLP_SETTINGS_FILE, settings, output=f"--out_dir {out}", defaults=defaults)
    table = read_dataset(FLAGS.dataset, FLAGS.data_dir, **options)
    if FLAGS.skip_uncached:
        table, uncached = rows_with_features(FLAGS.features, table)
        if uncached:
            if table.empty:
                raise NoUsableInput(f"features: {FLAGS.features} holds none of the {len(uncached)} images of the table")
            print(f"{len(uncached)} image(s) without cached features left out (--skip_uncached): {first_few(uncached)}")
    feats = load_features(FLAGS.features, table["image"].astype(str).tolist())
    splits = table_splits(table, chosen["num_splits"], FLAGS.seed, official)
    config = HeadConfig(
        hidden=tuple(hidden),
        dropout=tuple(dropout),
        standardize_features=FLAGS.standardize_features,
        epochs=chosen["epochs"],
        batch_size=chosen["batch_size"],
        learning_rates=chosen["learning_rates"],
        lr_selection=FLAGS.lr_selection,
        seed=FLAGS.seed,
        normalize_targets=chosen["normalize_targets"],
    )
    name = f"{FLAGS.dataset}_head"
    # Reused only when made from these very scores and features (an edited ratings.csv is refused, not reused).
    if finished and finished_on_these_inputs(out, table, feats, splits, config, name, chosen["target_column"]):
        print(f"{out / 'summary.csv'}: finished already with these settings and inputs (--overwrite redoes it)")
        print((out / "summary.md").read_text() if (out / "summary.md").exists() else "")
        return 0
    # Stored once the inputs are known to be good, so a run that failed on a bad input does not lock --out_dir; nor
    # does one stopped before it finished a split or a learning rate (other settings then start afresh).
    check_settings(
        out / MLP_SETTINGS_FILE,
        settings,
        FLAGS.overwrite,
        output=f"--out_dir {out}",
        holds_work=holds_finished_splits(out),
        defaults=defaults,
    )
    if FLAGS.overwrite:  # redo every split, also those an earlier run with these settings finished
        discard_finished_splits(out)
    from deepfl.protocol import run_and_report  # TensorFlow, needed only from here on

    result = run_and_report(
        table,
        feats,
        splits,
        config,
        out,
        name=name,
        title=FLAGS.dataset,
        target_column=chosen["target_column"],
    )
    print(result.per_split.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(result.summary.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
