"""deepfl-reproduce: the paper's within- and cross-data-set tables for every benchmark you have.

  deepfl-reproduce --model multitask.keras --kadid10k_dir ~/data/kadid10k --tid2013_dir ~/data/tid2013 \\
      --out_dir tables

For each data set whose folder is given: MLSP features (cached, resumable), the MLP protocol over --num_splits
content-aware 60/20/20 splits (KonIQ-10k: its official split), median SROCC/PLCC/KROCC/RMSE. Writes
`within.csv`/`within.md` (our medians next to the paper's reported SROCC/PLCC; data sets not given are listed as
skipped) and `cross.csv`/`cross.md` (train on one data set, test on all images of another; paper cells are
left empty where we have not transcribed its figures). Without --model the ImageNet backbone is used (the
paper's baseline). Finished per-data-set runs (summary.csv) are reused.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from deepfl import paper
from deepfl.cli import app

FLAGS = flags.FLAGS
BENCHMARKS = ("kadid10k", "live", "csiq", "tid2013", "koniq10k", "clive")
app.define_out_dir()
for _name in BENCHMARKS:
    flags.DEFINE_string(f"{_name}_dir", None, f"Folder of {_name} as distributed (omit to skip it).")
flags.DEFINE_string("model", None, "Trained multi-task model (.keras). Omitted: the ImageNet backbone (baseline).")
flags.DEFINE_string("weights", "imagenet", "Backbone weights without --model: imagenet, a local file, or none.")
flags.DEFINE_integer("num_splits", paper.STAGE2_NUM_SPLITS, "Random content-aware splits per data set.", lower_bound=1)
flags.DEFINE_integer("epochs", paper.STAGE2_EPOCHS, "MLP epochs (default: the paper's).", lower_bound=1)
flags.DEFINE_integer("batch_size", paper.STAGE2_BATCH_SIZE, "MLP mini-batch size.", lower_bound=1)
flags.DEFINE_integer("feature_batch", 8, "Images of equal size per forward pass.", lower_bound=1)
flags.DEFINE_list("learning_rates", [f"{lr:g}" for lr in paper.STAGE2_LEARNING_RATES],
                  "MLP lr candidates (validation).")
flags.DEFINE_list("cross", ["kadid10k:live", "kadid10k:csiq", "kadid10k:tid2013", "koniq10k:clive"],
                  "train:test pairs of the cross-data-set table (pairs with a data set not given are skipped).")
flags.DEFINE_integer("seed", 0, "Seed of the splits and heads.")


def main(argv: list[str]) -> int:
    from deepfl import features, protocol, reporting
    from deepfl.data import DATASETS, read_dataset
    from deepfl.jobs import ErrorPolicy

    out = Path(FLAGS.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    given = {name: FLAGS[f"{name}_dir"].value for name in BENCHMARKS if FLAGS[f"{name}_dir"].value}
    pairs = []
    for item in FLAGS.cross:
        train, sep, test = item.partition(":")
        if not sep or train not in BENCHMARKS or test not in BENCHMARKS:
            raise ValueError(f"cross: {item!r} is not train:test with names among {BENCHMARKS}")
        pairs.append((train, test))
    if not given:
        print("no data set folder given: every data set is skipped (nothing is faked)")
    config = protocol.HeadConfig(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, seed=FLAGS.seed,
                                 learning_rates=[float(v) for v in FLAGS.learning_rates])
    extractor = None
    source = str(Path(FLAGS.model).resolve()) if FLAGS.model else f"imagenet-backbone(weights={FLAGS.weights})"
    tables, feats, splits, summaries, counts, n_splits = {}, {}, {}, {}, {}, {}
    for name, folder in given.items():
        table = read_dataset(name, folder)
        if extractor is None:
            weights = None if FLAGS.weights.lower() == "none" else FLAGS.weights
            extractor = features.load_extractor(FLAGS.model, weights=weights)
        cache = out / "features" / f"{name}.h5"
        policy = ErrorPolicy("skip")
        features.extract_to_cache(extractor, table["image"].astype(str).tolist(), cache, FLAGS.feature_batch,
                                  source=source, policy=policy)
        if policy.count:
            with features.FeatureCache(cache, mode="r") as stored:
                table = table[table["image"].astype(str).map(stored.__contains__)].reset_index(drop=True)
            print(f"{name}: {policy.summary('images')} (left out of the protocol)")
        tables[name] = table
        feats[name] = features.load_features(cache, table["image"].astype(str).tolist())
        official = bool(DATASETS[name].has_official_split)
        splits[name] = protocol.table_splits(table, 1 if official else FLAGS.num_splits, FLAGS.seed, official)
        run_dir = out / name
        if (run_dir / "summary.csv").exists():
            import pandas as pd

            summaries[name] = pd.read_csv(run_dir / "summary.csv").set_index("statistic")
            print(f"{name}: reusing finished run in {run_dir}")
        else:
            result = protocol.run_and_report(table, feats[name], splits[name], config, run_dir,
                                             name=f"{name}_head", title=DATASETS[name].title)
            summaries[name] = result.summary
        counts[name], n_splits[name] = len(table), len(splits[name])
    within = reporting.within_table(summaries, counts, n_splits, datasets=BENCHMARKS)
    reporting.write_table(within, out, "within", "Within-data-set results (median over splits) vs the paper")
    print(reporting.to_markdown(within))
    cross_results = {}
    for train, test in pairs:
        missing = [n for n in (train, test) if n not in given]
        if missing:
            cross_results[(train, test)] = f"no data folder given for {', '.join(missing)}"
            continue
        cross_results[(train, test)] = protocol.cross_dataset(
            feats[train], tables[train]["score"].to_numpy(), splits[train][0], feats[test],
            tables[test]["score"].to_numpy(), config)
    cross = reporting.cross_table(cross_results)
    reporting.write_table(cross, out, "cross", "Cross-data-set results (train on one, test on all of another)")
    print(reporting.to_markdown(cross))
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
