"""Exit codes tell a script whether a job did its work: deepfl-label exits 3 with one line when every pair was
skipped (wrong --image_root, sizes that differ, images below a metric's minimum), 2 for a missing folder, 0 when
rows were written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import killrestart as kr
from badinputs import textured_image
from deepfl.cli.app import EXIT_BAD_INPUT, EXIT_NOTHING_DONE
from deepfl.images import write_image


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error")]


@pytest.fixture(scope="module")
def placeholder(tmp_path_factory) -> Path:
    """A folder with m.keras and h.keras: files that exist (--model and --head must name one when the flags are
    parsed) but are never read, since the tests refuse another flag first or find nothing to do."""
    folder = tmp_path_factory.mktemp("placeholders")
    for name in ("m.keras", "h.keras"):
        (folder / name).write_bytes(b"never read")
    return folder


def test_label_exits_3_when_every_pair_is_skipped(tmp_path):
    refs, dists, empty = tmp_path / "refs", tmp_path / "dists", tmp_path / "empty"
    for folder in (refs, dists, empty):
        folder.mkdir()
    write_image(refs / "small.png", textured_image(64, 64, 0))  # below MS-SSIM's 161 pixels
    write_image(refs / "big.png", textured_image(96, 96, 1))
    write_image(dists / "small_1.png", textured_image(64, 64, 2))
    write_image(dists / "big_1.png", textured_image(80, 96, 3))  # not the size of its reference
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("dist_im", "ref_im"), ("small_1.png", "small.png"), ("big_1.png", "big.png")])
    common = [f"--manifest={manifest}", f"--ref_root={refs}"]
    argvs = {
        "wrong image_root": [*common, f"--image_root={empty}", f"--out_dir={tmp_path / 'a' / 'b'}", "--metrics=ssim"],
        "missing image_root": [*common, f"--image_root={tmp_path / 'nowhere'}", f"--out_dir={tmp_path / 'b'}"],
        "too small and mismatched": [
            *common,
            f"--image_root={dists}",
            f"--out_dir={tmp_path / 'c'}",
            "--metrics=ssim,msssim,iwssim",
        ],
        "small pair scored": [*common, f"--image_root={dists}", f"--out_dir={tmp_path / 'd'}", "--metrics=ssim"],
        "no image_root": [*common, f"--out_dir={tmp_path / 'e'}"],
    }
    results = dict(zip(argvs, kr.run_batch("label", list(argvs.values()))))
    wrong = results["wrong image_root"]
    assert wrong.returncode == EXIT_NOTHING_DONE, wrong.stderr[-2000:]
    # Named at the start, as the folder's fault, before any pair is tried (walk 42c: a warning per pair first).
    assert error_lines(wrong.stderr) == [
        f"error: no distorted image found: none of the 2 pairs to do is in {empty} (first: small_1.png); give the "
        "folder the manifest's paths start from as --image_root (the --out_dir of deepfl-distort)"
    ]
    assert "WARNING" not in wrong.stderr
    missing = results["missing image_root"]
    assert missing.returncode == EXIT_BAD_INPUT, missing.stderr[-2000:]
    assert error_lines(missing.stderr) == [
        f"error: flag --image_root={tmp_path / 'nowhere'}: no such folder (--help lists the flags)"
    ]
    # A required flag left out, in plain words (absl: "flag --image_root=None: Flag --image_root must have a value
    # other than None.").
    assert results["no image_root"].returncode == EXIT_BAD_INPUT
    assert error_lines(results["no image_root"].stderr) == ["error: --image_root is required (--help lists the flags)"]
    # A run that made its --out_dir (and the folder above it) and scored nothing leaves neither the folders nor a
    # header-only CSV behind.
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    small = results["too small and mismatched"]
    assert small.returncode == EXIT_NOTHING_DONE, small.stderr[-2000:]
    assert len(error_lines(small.stderr)) == 1
    assert "small_1.png" in small.stderr and "big_1.png: size 96x80 differs" in small.stderr
    # every metric the pair is too small for, in one line, and the way on
    assert "small_1.png: not scored (msssim, iwssim: images of 64x64 pixels" in small.stderr, small.stderr[-2000:]
    assert "(leave them out of --metrics to score the others)" in small.stderr
    scored = results["small pair scored"]
    assert scored.returncode == 0, scored.stderr[-2000:]  # one row written, the mismatched pair skipped
    assert "1 row written" in scored.stdout and scored.stdout.count("written, ") == 1
    assert "written, " not in scored.stderr  # the summary is printed once


def test_distort_exits_3_on_an_empty_folder_and_keeps_no_settings_of_bad_flags(tmp_path):
    """An empty --ref_dir, or one of bad images only, did nothing (exit 3, as extract-features); flags refused (a
    shard index out of range) store no settings, so the corrected command is not refused as a change of settings."""
    empty, refs = tmp_path / "empty", tmp_path / "refs"
    empty.mkdir()
    refs.mkdir()
    write_image(refs / "a.png", textured_image(48, 64, 0))
    out = tmp_path / "out"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not an image")
    (broken / "b.jpg").write_bytes(b"")
    argvs = {
        "empty": [f"--ref_dir={empty}", f"--out_dir={tmp_path / 'e'}"],
        "all bad": [f"--ref_dir={broken}", f"--out_dir={tmp_path / 'b'}", "--workers=1"],
        "bad shard": [f"--ref_dir={refs}", f"--out_dir={out}", "--num_shards=2", "--shard_index=3"],
        "corrected": [f"--ref_dir={refs}", f"--out_dir={out}", "--resize", "--workers=1"],
        # a rerun used to distort the first run's outputs as new references
        "out_dir is ref_dir": [f"--ref_dir={refs}", f"--out_dir={refs}/.", "--workers=1"],
        "out_dir is a file": [f"--ref_dir={refs}", f"--out_dir={refs / 'a.png'}"],  # was exit 1, "File exists"
        "below a file": [f"--ref_dir={refs}", f"--out_dir={refs / 'a.png' / 'sub'}"],
        "bmp compressed": [f"--ref_dir={refs}", f"--out_dir={tmp_path / 'bmp'}", "--format=bmp", "--png_compression=5"],
    }
    results = dict(zip(argvs, kr.run_batch("distort", list(argvs.values()))))
    assert results["empty"].returncode == EXIT_NOTHING_DONE, results["empty"].stderr[-2000:]
    assert "no image in this folder" in error_lines(results["empty"].stderr)[0]
    # Every reference bad: nothing was distorted, so a script must not go on to label (before: exit 0).
    assert results["all bad"].returncode == EXIT_NOTHING_DONE, results["all bad"].stderr[-2000:]
    assert "all 2 references were skipped as bad" in error_lines(results["all bad"].stderr)[0]
    assert "0 manifest rows written, 0 references already done, 2 bad references skipped" in results["all bad"].stdout
    assert results["bad shard"].returncode == EXIT_BAD_INPUT and "shard_index" in results["bad shard"].stderr
    assert results["corrected"].returncode == 0, results["corrected"].stderr[-2000:]
    assert len(list((out).glob("a_*.png"))) == 5
    same = results["out_dir is ref_dir"]
    assert same.returncode == EXIT_BAD_INPUT and "is --ref_dir; the next run would take" in same.stderr
    assert sorted(p.name for p in refs.iterdir()) == ["a.png"]
    bmp = results["bmp compressed"]  # was accepted, the compression silently ignored
    assert bmp.returncode == EXIT_BAD_INPUT and "--png_compression: applies to --format png only" in bmp.stderr
    for case in ("out_dir is a file", "below a file"):
        assert results[case].returncode == EXIT_BAD_INPUT, results[case].stderr[-2000:]
        assert error_lines(results[case].stderr) == [
            f"error: flag --out_dir={argvs[case][1].split('=', 1)[1]}: not a folder: it, or a folder above it, is a "
            "file (--help lists the flags)"
        ]


def test_extract_features_names_an_image_too_small_for_the_network_and_resumes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "big.png", textured_image(96, 96, 0))
    write_image(images / "thumb.png", textured_image(40, 40, 1))  # below InceptionResNetV2's receptive field
    argv = [f"--images={images}", f"--out_dir={tmp_path / 'feats'}", "--weights=none"]
    first, rerun, stop = kr.run_batch("extract_features", [argv, argv, [*argv, "--on_error=stop"]])
    assert first.returncode == 0, first.stderr[-2000:]
    warning = [line for line in first.stderr.splitlines() if "thumb.png" in line]
    assert len(warning) == 1 and "cannot be extracted at 40x40" in warning[0], first.stderr[-2000:]
    assert "too small for the network: InceptionResNetV2 needs at least 75x75" in warning[0], warning[0]
    assert "1 extracted, 0 already cached, 1 bad image skipped" in first.stdout
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "0 extracted, 1 already cached, 1 bad image skipped" in rerun.stdout
    assert stop.returncode == EXIT_BAD_INPUT and "thumb.png" in error_lines(stop.stderr)[0]


def test_extract_features_and_predict_name_empty_folders_files_for_folders_and_missing_flags(tmp_path, placeholder):
    """An empty folder is work not done (exit 3, not an empty cache or table with exit 0); a file where a folder
    is expected, and a missing required flag, are bad input: one `error:` line and exit 2 (absl's own parser
    printed "FATAL Flags parsing error" and exited 1, the code of a partial failure)."""
    empty, photo = tmp_path / "empty", tmp_path / "photo.png"
    empty.mkdir()
    write_image(photo, textured_image(48, 64, 0))
    out = f"--out_dir={tmp_path / 'feats'}"
    empty_folder, a_file, no_out_dir, no_folder, empty_flag = kr.run_batch(
        "extract_features",
        [
            [f"--images={empty}", out, "--weights=none"],
            [f"--images={photo}", out, "--weights=none"],
            [f"--images={empty}", "--weights=none"],
            [f"--images={tmp_path / 'nosuch'}", out, "--weights=none"],
            ["--images=", out, "--weights=none"],  # was taken for the current folder
        ],
    )
    (nothing_to_score,) = kr.run_batch("predict", [[f"--model={placeholder / 'm.keras'}", str(empty)]])
    for result, code, words in (
        (empty_folder, EXIT_NOTHING_DONE, "no image in this folder"),
        (a_file, EXIT_BAD_INPUT, "is a file, not a folder"),
        (no_out_dir, EXIT_BAD_INPUT, "out_dir"),
        (no_folder, EXIT_BAD_INPUT, f"flag --images={tmp_path / 'nosuch'}: no such folder"),
        (empty_flag, EXIT_BAD_INPUT, "flag --images=: empty: give a folder"),
        (nothing_to_score, EXIT_NOTHING_DONE, "no image found"),
    ):
        assert result.returncode == code, result.stderr[-2000:]
        assert len(error_lines(result.stderr)) == 1 and words in error_lines(result.stderr)[0], result.stderr
        assert "FATAL" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "feats" / "empty.h5").exists()
    assert not (tmp_path / "feats").exists()  # the failed runs made it and left nothing in it: it is removed


def test_label_refuses_an_output_another_job_is_writing(tmp_path):
    """The same command started twice wrote every row twice (a new user's walk): the second job is refused."""
    from deepfl.jobs import AppendOnlyCsv
    from deepfl.labeling import output_columns

    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "r.png", textured_image(48, 48, 0))
    write_image(images / "d.png", textured_image(48, 48, 1))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("dist_im,ref_im\nd.png,r.png\n")
    out = tmp_path / "out"
    held = AppendOnlyCsv(out / "labels.csv", output_columns(["gmsd"]), key="dist_im", lock=True)  # the first job
    argv = [f"--manifest={manifest}", f"--image_root={images}", f"--out_dir={out}", "--metrics=gmsd"]
    (busy,) = kr.run_batch("label", [argv])
    assert busy.returncode == EXIT_BAD_INPUT, busy.stderr[-2000:]
    assert "labels.csv: being written by another job" in error_lines(busy.stderr)[0]
    del held
    (free,) = kr.run_batch("label", [argv])
    assert free.returncode == 0 and "1 row written" in free.stdout, free.stderr[-2000:]


def test_values_a_job_cannot_use_are_refused_before_anything_is_written(tmp_path, placeholder):
    """A seed outside 0 .. 2**32 - 1, a distortion type outside 1..25 and a learning rate that is not a positive
    number are refused when the flags are parsed, naming the flag: the job has written nothing, so the corrected
    command is not refused as a change of settings (the demo, train-mlp and reproduce stored the bad value first)."""
    cases = {
        "demo": [["--types=0,1"], ["--types=a"], ["--seed=-1"]],
        "train_mlp": [
            ["--dataset=ratings", f"--data_dir={tmp_path}", "--features=f.h5", "--learning_rates=-0.1"],
            ["--dataset=ratings", f"--data_dir={tmp_path}", "--features=f.h5", "--learning_rates=abc"],
        ],
        "reproduce": [
            [f"--model={placeholder / 'm.keras'}", "--learning_rates=1e-3,0"],
            [f"--model={placeholder / 'm.keras'}", "--seed=-1"],
        ],
        "train_multitask": [["--weak_labels=x.csv", "--seed=4294967296"]],
        "distort": [[f"--ref_dir={tmp_path}", "--seed=4294967296"]],
    }
    for step, argvs in cases.items():
        outs = [tmp_path / f"{step}_{k}" for k in range(len(argvs))]
        results = kr.run_batch(step, [[*argv, f"--out_dir={out}"] for argv, out in zip(argvs, outs)])
        for argv, out, result in zip(argvs, outs, results):
            flag = argv[-1].split("=")[0]
            lines = error_lines(result.stderr)
            assert result.returncode == EXIT_BAD_INPUT, (step, argv, result.stderr[-1500:])
            assert len(lines) == 1 and lines[0].startswith(f"error: flag {flag}="), (step, argv, lines)
            assert not out.exists(), (step, argv)


def test_learn_sff_basis_checks_its_comparison_inputs_before_it_learns(tmp_path):
    """--compare_images defaulted to a build machine's folder, and both comparison inputs were looked at only after
    the basis was learned and --out written: the corrected rerun was then refused for the existing --out (help
    review, session 40)."""
    w_mat = tmp_path / "W.mat"
    w_mat.write_bytes(b"")
    cases = [
        [f"--compare_w_mat={w_mat}"],
        [f"--compare_images={tmp_path}"],
        [f"--compare_w_mat={tmp_path / 'nope.mat'}", f"--compare_images={tmp_path}"],
        [f"--compare_w_mat={w_mat}", f"--compare_images={tmp_path / 'nope'}"],
        ["--num_components=193"],
    ]
    results = kr.run_batch("learn_sff_basis", [[f"--out={tmp_path / 'w.npz'}", *argv] for argv in cases])
    expected = ["go together", "go together", "nope.mat: no such file", "nope: no such folder", "at most 3 x"]
    for argv, words, result in zip(cases, expected, results):
        lines = error_lines(result.stderr)
        assert result.returncode == EXIT_BAD_INPUT and len(lines) == 1 and words in lines[0], (argv, result.stderr)
    assert not (tmp_path / "w.npz").exists()


def test_reproduce_without_data_and_stage1_without_usable_rows_exit_3(tmp_path, placeholder):
    """Nothing to do is exit 3 with one line: deepfl-reproduce without any data set folder wrote empty tables and
    exited 0; stage 1 on a weak-label CSV none of whose images is under --image_root warned, then exited 2 on a
    split error that did not say why."""
    empty = tmp_path / "images"
    empty.mkdir()
    labels = tmp_path / "labels.csv"
    labels.write_text("dist_im,ref_im,ssim\na_01_01.png,a.png,0.9\nb_01_01.png,b.png,0.8\n", encoding="utf-8")
    (reproduced,) = kr.run_batch(
        "reproduce", [[f"--model={placeholder / 'm.keras'}", f"--out_dir={tmp_path / 'tables'}"]]
    )
    (trained,) = kr.run_batch(
        "train_multitask",
        [
            [
                f"--weak_labels={labels}",
                f"--image_root={empty}",
                f"--out_dir={tmp_path / 'run'}",
                "--arch=tiny",
                "--weights=none",
            ]
        ],
    )
    assert reproduced.returncode == EXIT_NOTHING_DONE, reproduced.stderr[-1500:]
    assert len(error_lines(reproduced.stderr)) == 1 and "--kadid10k_dir" in reproduced.stderr
    assert not (tmp_path / "tables").exists()
    assert trained.returncode == EXIT_NOTHING_DONE, trained.stderr[-1500:]
    (line,) = error_lines(trained.stderr)
    assert "none of its 2 rows can be used (2 images absent" in line and "a_01_01.png" in line


def test_reproduce_on_a_data_set_none_of_whose_images_can_be_used_lists_it_skipped_and_exits_3(tmp_path):
    """Every image below InceptionResNetV2's 75 pixels: deepfl-reproduce blamed the splits ("0 distinct
    content(s) ... give a 'content' per image", exit 2) and stopped (walk 42)."""
    import pandas as pd

    from helpers_datasets import write_mini_kadid

    write_mini_kadid(tmp_path / "kadid10k")  # 18 images of 48x64
    tables = tmp_path / "tables"
    flags = ["--weights=none", "--num_splits=2", "--epochs=1", "--learning_rates=1e-3"]
    (result,) = kr.run_batch("reproduce", [[f"--kadid10k_dir={tmp_path / 'kadid10k'}", f"--out_dir={tables}", *flags]])
    assert result.returncode == EXIT_NOTHING_DONE, result.stderr[-1500:]
    (line,) = error_lines(result.stderr)
    assert "no data set could be used (kadid10k: none of its 18 images could be used)" in line, line
    within = pd.read_csv(tables / "within.csv").set_index("dataset")
    assert within.loc["kadid10k", "status"] == "skipped: none of its 18 images could be used"
    assert pd.read_csv(tables / "cross.csv")["status"].str.startswith("skipped: ").all()
    assert not list((tables / "features").glob("kadid10k.h5*"))  # no empty cache left behind (walk 42: 8 KB)


def test_predict_refuses_an_output_whose_ending_contradicts_format(tmp_path, placeholder):
    """`--format table --output scores.csv` wrote a text table into a file named .csv (exit 0)."""
    out = tmp_path / "scores.csv"
    model = f"--model={placeholder / 'm.keras'}"
    (result,) = kr.run_batch("predict", [[model, "--format=table", f"--output={out}", "photo.png"]])
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-1500:]
    (line,) = error_lines(result.stderr)
    assert "ends in .csv but --format=table" in line and not out.exists()


def test_a_word_that_is_not_a_flag_is_refused_before_anything_is_written(tmp_path, placeholder):
    """absl hands words that are not flags to the job unread: `deepfl-export ... --overwrite false` exported with
    --overwrite on, `false` ignored, and replaced the file. Every job but deepfl-predict (whose words are its
    images) refuses such a word, naming it; after a true/false flag, the message shows how to give its value."""
    existing = tmp_path / "exported.keras"
    existing.write_bytes(b"an earlier export")
    cases = {
        "demo": [
            ["stray", f"--out_dir={tmp_path / 'demo'}"],
            [f"--out_dir={tmp_path / 'demo'}", "--keep_checkpoints", "x"],
        ],
        "distort": [[f"--ref_dir={tmp_path}", f"--out_dir={tmp_path / 'distort'}", "--", "--seed=3"]],
        "label": [
            [
                f"--manifest={tmp_path}/m.csv",
                f"--image_root={tmp_path}",
                f"--out_dir={tmp_path / 'label'}",
                "--metrics",
                "ssim",
                "msssim",
            ]
        ],
        "train_multitask": [["--weak_labels=x.csv", f"--out_dir={tmp_path / 'stage1'}", "stray"]],
        "extract_features": [["--dataset=csiq", f"--data_dir={tmp_path}", f"--out_dir={tmp_path / 'f'}", "stray"]],
        "train_mlp": [
            ["--dataset=csiq", f"--data_dir={tmp_path}", "--features=f.h5", f"--out_dir={tmp_path / 'm'}", "x"]
        ],
        "reproduce": [[f"--model={placeholder / 'm.keras'}", f"--out_dir={tmp_path / 'tables'}", "stray"]],
        "export": [
            [
                f"--model={placeholder / 'm.keras'}",
                f"--head={placeholder / 'h.keras'}",
                f"--output={existing}",
                "--overwrite",
                "false",
            ]
        ],
    }
    results = {step: kr.run_batch(step, argvs) for step, argvs in cases.items()}
    for step, argvs in cases.items():
        for argv, result in zip(argvs, results[step]):
            lines = error_lines(result.stderr)
            assert result.returncode == EXIT_BAD_INPUT, (step, argv, result.stderr[-1500:])
            assert len(lines) == 1 and lines[0].startswith("error: unexpected argument '"), (step, argv, lines)
    assert "write --overwrite=false (or --overwrite for true, --nooverwrite for false)" in results["export"][0].stderr
    # a word after a true/false flag that is no true/false value gets no advice to give it as the flag's value
    assert "unexpected argument 'x': this command takes flags only" in results["demo"][1].stderr
    assert existing.read_bytes() == b"an earlier export"
    assert not [path.name for path in tmp_path.iterdir() if path.name != "exported.keras"]


def test_refusals_name_the_flag_and_the_way_on(tmp_path):
    """What a user walk met: a mistyped --model said only "[Errno 2] No such file or directory"; `--arch small`
    without --weights named the library's `weights=none`; `--data_dir=~/x` (no shell expansion) said only "no such
    folder"; a LIVE release unpacked one level deeper said "dmos.mat: metadata file not found"; `--dataset
    KADID-10k` wrote KADID-10k.h5 where the docs read kadid10k.h5."""
    from deepfl import models
    from helpers_datasets import write_mini_kadid

    home = tmp_path / "home"
    (home / "pics").mkdir(parents=True)
    write_image(home / "pics" / "a.png", textured_image(48, 64, 0))
    (tmp_path / "live" / "databaserelease2").mkdir(parents=True)
    (tmp_path / "live" / "databaserelease2" / "dmos.mat").write_bytes(b"")
    write_mini_kadid(tmp_path / "kadid", contents=2, per_ref=1)
    model = tmp_path / "tiny.keras"
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(model)
    feats = tmp_path / "feats"
    extract = {
        "typo": ([f"--images={home / 'pics'}", f"--model={tmp_path / 'modle.keras'}", f"--out_dir={feats}"], 2),
        "folder model": ([f"--images={home / 'pics'}", f"--model={tmp_path}", f"--out_dir={feats}"], 2),
        "tilde": (["--images=~/pics", f"--out_dir={feats}"], 2),
        "nested": (["--dataset=live", f"--data_dir={tmp_path / 'live'}", f"--out_dir={feats}", "--weights=none"], 2),
        "alias": (
            ["--dataset=KADID-10k", f"--data_dir={tmp_path / 'kadid'}", f"--out_dir={feats}", f"--model={model}"],
            0,
        ),
    }
    env = kr.job_env(HOME=str(home))
    results = dict(zip(extract, kr.run_batch("extract_features", [argv for argv, _ in extract.values()], env=env)))
    for name, (_, code) in extract.items():
        assert results[name].returncode == code, (name, results[name].stderr[-1500:])
    # refused when the flags are parsed, before TensorFlow loads (4-5 s to say so before walk 39)
    assert error_lines(results["typo"].stderr) == [
        f"error: flag --model={tmp_path / 'modle.keras'}: no such file (--help lists the flags)"
    ]
    assert error_lines(results["folder model"].stderr) == [
        f"error: flag --model={tmp_path}: is a folder, not a file (--help lists the flags)"
    ]
    assert (
        f"a literal '~': write --images ~/pics or --images={home / 'pics'}" in error_lines(results["tilde"].stderr)[0]
    )
    assert error_lines(results["nested"].stderr)[0].endswith(
        f"it is in {tmp_path / 'live' / 'databaserelease2'}: give that folder"
    )
    assert (feats / "kadid10k.h5").is_file() and not (feats / "KADID-10k.h5").exists()
    small_argv = ["--weak_labels=x.csv", f"--image_root={tmp_path}", "--arch=small", f"--out_dir={tmp_path / 's1'}"]
    small = kr.run_batch("train_multitask", [small_argv])[0]
    assert small.returncode == EXIT_BAD_INPUT and "use --weights=none (random init" in small.stderr, small.stderr
