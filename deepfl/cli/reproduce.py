"""deepfl-reproduce: the paper's within- and cross-data-set tables for every benchmark you have.

  deepfl-reproduce --model multitask.keras --kadid10k_dir ~/data/kadid10k --tid2013_dir ~/data/tid2013 \\
      --out_dir tables
  deepfl-reproduce --weights quality-mlsp-mtl-mse-loss.hdf5 --kadid10k_dir ~/data/kadid10k \\
      --protocol authors_demo --out_dir tables        # the authors' released weights and demo protocol

For each data set whose folder is given: MLSP features (cached, resumable; float32, native resolution), the MLP
protocol over --num_splits content-aware 60/20/20 splits (KonIQ-10k: its official split), median
SROCC/PLCC/KROCC/RMSE. Writes `within.csv`/`within.md` (our medians next to the paper's reported SROCC/PLCC and
the authors' demo's KADID-10k SROCC; data sets not given are listed as skipped) and `cross.csv`/`cross.md` (train
on one data set, test on all images of another; paper cells are left empty where we have not transcribed its
figures). `--protocol authors_demo` writes `within_authors_demo.*`/`cross_authors_demo.*` and per-data-set runs
in `<dataset>_authors_demo/`. Without --model the backbone with --weights is used (default: ImageNet, the
paper's baseline, with Keras' [-1, 1] pixel scaling). A finished per-data-set run is reused by a rerun with the
same settings (its data folder, features, head and splits, stored in its reproduce_settings.json), and its
finished splits by a rerun after a kill; other settings are refused (exit 2, naming them) unless --overwrite.
`--dataset_option live:realigned=true` (repeatable) reads a data set with its reader's options; the tables' titles
name them, and the protocol settings changed by flags (--epochs, --learning_rates, ...), as their cells are then
not the paper's setting; a data set read from part of its release says so in its status ("ok (60 of the
release's 10,125 images)").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from absl import flags

from deepfl import paper
from deepfl.cli import app, extraction_flags, protocol_flags

FLAGS = flags.FLAGS
BENCHMARKS = ("kadid10k", "live", "csiq", "tid2013", "koniq10k", "clive")
app.define_out_dir()
for _name in BENCHMARKS:
    flags.DEFINE_string(f"{_name}_dir", None, f"Folder of {_name} as distributed (omit to skip it).")
    app.require_folder(f"{_name}_dir")
flags.DEFINE_multi_string(
    "dataset_option",
    [],
    "dataset:key=value for that data set's reader; repeat the flag for several. live:realigned=true (the scores of "
    "dmos_realigned.mat instead of dmos.mat), live:include_references=true (the 203 reference entries, DMOS 0), "
    "clive:include_training_images=true (the release's 7 training images, dropped by default), "
    "koniq10k:resolution=512x384 (that folder of the release; by default 1024x768 where present). Default: none, "
    "the paper's tables. A data set's run records its options: other options are refused unless --overwrite.",
)
extraction_flags.define_extraction_flags()
app.require_file("model")
protocol_flags.define_protocol_flag()
flags.DEFINE_integer("num_splits", paper.STAGE2_NUM_SPLITS, "Random content-aware splits per data set.", lower_bound=1)
flags.DEFINE_integer("epochs", paper.STAGE2_EPOCHS, "MLP epochs (default: the paper's).", lower_bound=1)
flags.DEFINE_integer(
    "batch_size",
    paper.STAGE2_BATCH_SIZE,
    "MLP mini-batch size (not the images per forward pass: --feature_batch).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "feature_batch",
    8,
    "Images of equal size per forward pass of feature extraction (deepfl-extract-features' --batch_size; "
    "lower it if memory runs out).",
    lower_bound=1,
)
flags.DEFINE_string(
    "features_dir",
    None,
    "Folder of the feature caches, <dataset>.h5 (default: <out_dir>/features). Give deepfl-extract-features' "
    "--out_dir to use its caches: images they lack are extracted into them; a cache of another model is refused.",
)
flags.DEFINE_list(
    "learning_rates", [f"{lr:g}" for lr in paper.STAGE2_LEARNING_RATES], "MLP lr candidates (validation)."
)
protocol_flags.require_positive_learning_rates()
flags.DEFINE_list(
    "cross",
    ["kadid10k:live", "kadid10k:csiq", "kadid10k:tid2013", "koniq10k:clive"],
    "train:test pairs of the cross-data-set table (pairs with a data set not given are skipped).",
)
app.define_seed("Seed of the splits and heads.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Redo a data set's run made with other settings (data folder, features, head, splits) instead of refusing.",
)


def _reader_options(texts: list[str], given: dict[str, str]) -> dict[str, dict]:
    """Each benchmark's reader options from the `dataset:key=value` texts of --dataset_option (typed and checked by
    `deepfl.data.reader_options`); refuses a text without a benchmark's name, and options of a data set whose
    folder is not given (they would be ignored without a word)."""
    from deepfl.data import reader_options

    pairs: dict[str, list[str]] = {name: [] for name in BENCHMARKS}
    for text in texts:
        name, colon, pair = text.partition(":")
        if not colon or name.strip().lower() not in BENCHMARKS:
            raise ValueError(
                f"dataset_option: {text!r} is not dataset:key=value with a data set among {', '.join(BENCHMARKS)}"
            )
        pairs[name.strip().lower()].append(pair)
    options = {name: reader_options(name, listed) for name, listed in pairs.items()}  # bad keys named first
    for name, listed in pairs.items():
        if listed and name not in given:
            raise ValueError(f"dataset_option: options of {name} ({', '.join(listed)}) without --{name}_dir")
    return options


def _settings_note(options: dict[str, dict], changed: list[str]) -> str:
    """What makes the tables' cells other than the protocol's setting, for their titles: the reader options in use
    ("; reader options: live realigned=True") and the protocol settings flags changed ("; changed: epochs=2")."""
    used = [
        f"{name} " + ", ".join(f"{key}={value}" for key, value in chosen.items())
        for name, chosen in options.items()
        if chosen
    ]
    return (f"; reader options: {'; '.join(used)}" if used else "") + (
        f"; changed: {', '.join(changed)}" if changed else ""
    )


def main(argv: list[str]) -> int:
    from deepfl import features, protocol_records, reporting
    from deepfl.data import DATASETS, read_dataset
    from deepfl.jobs import ErrorPolicy, check_settings

    out = Path(FLAGS.out_dir)
    given = {name: FLAGS[f"{name}_dir"].value for name in BENCHMARKS if FLAGS[f"{name}_dir"].value}
    options = _reader_options(FLAGS.dataset_option, given)
    pairs = []
    for item in FLAGS.cross:
        train, sep, test = item.partition(":")
        if not sep or train not in BENCHMARKS or test not in BENCHMARKS:
            raise ValueError(f"cross: {item!r} is not train:test with names among {BENCHMARKS}")
        pairs.append((train, test))
    if not given:  # exit 3 before anything is written: a script must not take empty tables for results
        raise app.NothingDone(
            "no data set folder given, so there is nothing to reproduce: pass one or more of "
            + ", ".join(f"--{name}_dir" for name in BENCHMARKS)
        )
    out.mkdir(parents=True, exist_ok=True)
    chosen = protocol_flags.protocol_choice()
    note = _settings_note(options, protocol_flags.changed_settings(chosen))
    config = protocol_records.HeadConfig(
        epochs=chosen["epochs"],
        batch_size=chosen["batch_size"],
        seed=FLAGS.seed,
        learning_rates=chosen["learning_rates"],
        normalize_targets=chosen["normalize_targets"],
    )
    suffix = "" if FLAGS.protocol == "paper" else f"_{FLAGS.protocol}"  # runs of each protocol kept apart
    extract = extraction_flags.extractor_arguments()
    extractor = None
    source = features.extractor_source(**extract)
    tables, feats, splits, summaries, counts, n_splits = {}, {}, {}, {}, {}, {}
    unusable: dict[str, str] = {}  # data sets none of whose images could be used, and why
    finished = {}
    for name, folder in given.items():  # every refusal before any work
        official = bool(DATASETS[name].has_official_split)
        settings = {
            "data_dir": str(Path(folder).resolve()),
            "features": source,
            "head": dataclasses.asdict(config),
            "num_splits": 1 if official else chosen["num_splits"],
            "target_column": chosen["target_column"],
        }
        if options[name]:  # settings stored by earlier runs (none of them) stay valid
            settings.update(dataset_options=options[name])
        run_dir = out / f"{name}{suffix}"
        run_dir.mkdir(parents=True, exist_ok=True)
        # A run that stopped before its first finished split (the backbone could not be built, say) holds nothing
        # the new settings would replace: they are taken without --overwrite.
        holds_work = protocol_records.holds_finished_splits(run_dir) or (run_dir / "summary.csv").exists()
        same = check_settings(
            run_dir / protocol_records.REPRODUCE_SETTINGS_FILE,
            settings,
            FLAGS.overwrite,
            output=run_dir,
            holds_work=holds_work,
            defaults={"dataset_options": {}},  # "dataset_options {} -> ...", not "null -> ..."
        )
        if not same:
            protocol_records.discard_finished_splits(run_dir)
            (run_dir / "summary.csv").unlink(missing_ok=True)
        finished[name] = same and (run_dir / "summary.csv").exists()
    for name, folder in given.items():
        table = read_dataset(name, folder, **options[name])
        cache = Path(FLAGS.features_dir or out / "features") / f"{name}.h5"
        policy = ErrorPolicy("skip")
        paths = table["image"].astype(str).tolist()
        if not features.holds_every_image(cache, paths, source):  # else a finished extraction: no model to load
            extractor = extractor if extractor is not None else features.load_extractor(**extract)
            features.extract_to_cache(extractor, paths, cache, FLAGS.feature_batch, source=source, policy=policy)
        if policy.count:  # (no cache at all when every image was skipped)
            table = features.rows_with_features(cache, table)[0] if cache.exists() else table.iloc[:0]
            print(f"{name}: {policy.summary('images')} (left out of the protocol)")
        if table.empty:  # (its splits were refused for "0 distinct contents", exit 2, and the job stopped: walk 42)
            unusable[name] = f"none of its {len(paths):,} images could be used"
            print(f"{name}: {unusable[name]} (the lines above name why); left out of the tables", flush=True)
            continue
        tables[name] = table
        feats[name] = features.load_features(cache, table["image"].astype(str).tolist())
        official = bool(DATASETS[name].has_official_split)
        num_splits = 1 if official else chosen["num_splits"]
        splits[name] = protocol_records.table_splits(table, num_splits, FLAGS.seed, official)
        run_dir = out / f"{name}{suffix}"
        if finished[name] and protocol_records.finished_on_these_inputs(
            run_dir, table, feats[name], splits[name], config, f"{name}_head", chosen["target_column"]
        ):
            import pandas as pd

            # round_trip: older pandas (2.0.3: 7,074 of 20,000 random values) reads 17-digit values one ulp
            # off by default, and a rerun's tables must equal the first run's byte for byte.
            summary = pd.read_csv(run_dir / "summary.csv", float_precision="round_trip")
            summaries[name] = summary.set_index("statistic")
            print(f"{name}: reusing finished run in {run_dir}")
        else:
            from deepfl import protocol  # TensorFlow, needed only to train

            result = protocol.run_and_report(
                table,
                feats[name],
                splits[name],
                config,
                run_dir,
                name=f"{name}_head",
                title=DATASETS[name].title,
                target_column=chosen["target_column"],
            )
            summaries[name] = result.summary
        counts[name], n_splits[name] = len(table), len(splits[name])
    within = reporting.within_table(
        summaries,
        counts,
        n_splits,
        skipped_reason=unusable,
        datasets=BENCHMARKS,
        protocol=FLAGS.protocol,
        reader_options=options,
    )
    reporting.write_table(
        within,
        out,
        f"within{suffix}",
        f"Within-data-set results (median over splits, protocol {FLAGS.protocol}{note}) vs the "
        "paper and the authors' demo",
    )
    print(reporting.to_markdown(within))
    cross_results = {}
    for train, test in pairs:
        missing = [n for n in (train, test) if n not in given]
        if missing:
            cross_results[(train, test)] = f"no data folder given for {', '.join(missing)}"
            continue
        if train in unusable or test in unusable:
            cross_results[(train, test)] = f"no usable image in {', '.join(n for n in (train, test) if n in unusable)}"
            continue
        record = out / f"cross{suffix}_{train}_to_{test}.json"  # the criteria and a digest of the inputs
        inputs = (
            feats[train],
            tables[train]["score"].to_numpy(),
            splits[train][0],
            feats[test],
            tables[test]["score"].to_numpy(),
            config,
        )
        kept = protocol_records.finished_cross_criteria(record, protocol_records.cross_run_key(*inputs))
        if kept is None:
            print(f"cross {train} -> {test}: training on {train}, testing on all of {test} ...", flush=True)
            from deepfl import protocol  # TensorFlow, needed only to train

            cross_results[(train, test)] = protocol.cross_dataset(*inputs, record=record)
        else:
            cross_results[(train, test)] = kept
        print(
            f"cross {train} -> {test}: SROCC {cross_results[(train, test)]['srocc']:.3f}"
            + (" (kept: an earlier run had the same inputs)" if kept is not None else "")
        )
    cross = reporting.cross_table(cross_results)
    reporting.write_table(
        cross,
        out,
        f"cross{suffix}",
        f"Cross-data-set results (train on one, test on all of another; protocol {FLAGS.protocol}{note})",
    )
    print(reporting.to_markdown(cross))
    if not summaries:  # every given data set left out: the tables hold no result (exit 3, not 0)
        raise app.NothingDone(
            f"no data set could be used ({'; '.join(f'{n}: {why}' for n, why in unusable.items())}); the tables "
            f"in {out} list them as skipped"
        )
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
