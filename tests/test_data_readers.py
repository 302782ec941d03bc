"""Readers of every benchmark, on tiny fake copies written in exactly the release's file formats and layouts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from deepfl import data as dd
from deepfl.errors import TableError
from helpers_datasets import write_mini_koniq, write_mini_live

PIXEL = np.full((4, 6, 3), 128, dtype=np.uint8)


def touch_image(path: Path) -> None:
    """Writes a real (tiny) image file in the format of its extension."""
    from deepfl.images import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, PIXEL)


# ---------------------------------------------------------------- builders of fake releases


def make_kadid(root: Path, refs=("I01", "I02", "I03"), levels=2) -> Path:
    rows = []
    for ref in refs:
        touch_image(root / "images" / f"{ref}.png")
        for t in (1, 2):
            for lev in range(1, levels + 1):
                name = f"{ref}_{t:02d}_{lev:02d}.png"
                touch_image(root / "images" / name)
                rows.append(f"{name},{ref}.png,{5 - lev * 0.5 - t * 0.1:.3f},0.5")
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n" + "\n".join(rows) + "\n")
    return root


CSIQ_ROWS = [  # image, dst_idx, dst_type, dst_lev, dmos_std, dmos
    ("1600", 1, "noise", 1, 0.061, 0.062),
    ("1600", 2, "jpeg", 2, 0.05, 0.2),
    ("1600", 3, "jpeg 2000", 1, 0.04, 0.1),
    ("aerial_city", 4, "fnoise", 3, 0.03, 0.4),
    ("aerial_city", 5, "blur", 5, 0.1, 0.9),
    ("boston", 6, "contrast", 2, 0.02, 0.3),
]


def make_csiq(root: Path, fmt: str = "xlsx") -> Path:
    frame = pd.DataFrame(CSIQ_ROWS, columns=["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    if fmt == "xlsx":
        pytest.importorskip("openpyxl")
        with pd.ExcelWriter(root / "csiq.DMOS.xlsx") as writer:
            frame.to_excel(writer, sheet_name="all_by_image", index=False)
    else:
        frame.to_csv(root / "csiq.DMOS.csv", index=False)
    for image, _, kind, level, _, _ in CSIQ_ROWS:
        folder, token = dd.readers.CSIQ_TYPES[kind]
        touch_image(root / "dst_imgs" / folder / f"{image}.{token}.{level}.png")
        touch_image(root / "src_imgs" / f"{image}.png")
    return root


def make_tid2013(root: Path) -> Path:
    lines = []
    for ref in (1, 2, 25):
        touch_image(root / "reference_images" / f"I{ref:02d}.BMP")
        for t, lev in ((1, 1), (5, 3)):
            name = f"i{ref:02d}_{t:02d}_{lev}.bmp"
            touch_image(root / "distorted_images" / name)
            lines.append(f"{4.5 + ref / 10 - lev / 3:.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


def make_clive(root: Path) -> Path:
    names = [f"t{i}.bmp" for i in range(1, 8)] + [f"{i}.JPG" for i in range(10, 20)]
    cell = np.empty((len(names), 1), dtype=object)
    cell[:, 0] = names
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    mos = np.linspace(10, 90, len(names))
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos[None, :]})
    for n in names[:7]:
        touch_image(root / "Images" / "trainingImages" / n)
    for n in names[7:]:
        touch_image(root / "Images" / n)
    return root


def make_weak_labels(root: Path, metrics=("ssim", "msssim", "mdsi"), bad_line: str | None = None) -> Path:
    images = root / "dist_imgs"
    rows = []
    for ref in ("a", "b"):
        for lev in range(1, 4):
            name = f"{ref}_03_{lev:02d}.bmp"
            touch_image(images / name)
            rows.append(
                ",".join([name, f"{ref}.png"] + [f"{0.9 - lev * 0.1 + j / 100:.4f}" for j in range(len(metrics))])
            )
    if bad_line is not None:
        rows.insert(2, bad_line)
    path = root / "labels.csv"
    path.write_text(",".join(["dist_im", "ref_im", *metrics]) + "\n" + "\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- every reader, good copies


def check_contract(table: pd.DataFrame, name: str) -> None:
    assert list(table.columns) == list(dd.TABLE_COLUMNS)
    info = dd.DATASETS[name]
    assert table.attrs["dataset"] == name
    assert table.attrs["score_range"] == info.score_range
    assert table.attrs["lower_better"] == info.lower_better
    for path in table["image"]:
        assert Path(path).is_absolute() and Path(path).is_file(), path
    for path in table["ref"]:
        assert path == "" or (Path(path).is_absolute() and Path(path).is_file()), path
    lo, hi = info.score_range
    expected = (hi - table["raw_score"]) / (hi - lo) if info.lower_better else (table["raw_score"] - lo) / (hi - lo)
    np.testing.assert_allclose(table["score"], expected)


def test_kadid10k(tmp_path):
    table = dd.read_dataset("KADID-10k", make_kadid(tmp_path))
    check_contract(table, "kadid10k")
    assert len(table) == 12 and set(table["content"]) == {"I01", "I02", "I03"}
    first = table.iloc[0]
    assert Path(first["image"]).name == "I01_01_01.png" and Path(first["ref"]).name == "I01.png"
    assert first["raw_score"] == pytest.approx(4.4) and first["score"] == pytest.approx((4.4 - 1) / 4)


def test_live(tmp_path):
    table = dd.read_live(write_mini_live(tmp_path))
    check_contract(table, "live")
    assert len(table) == 982 - 3  # reference entries flagged in `orgs` dropped
    assert Path(table["image"].iloc[0]).parent.name == "jp2k" and Path(table["image"].iloc[0]).name == "img2.bmp"
    assert Path(table["image"].iloc[-1]).parent.name == "fastfading"
    # lower DMOS is better: the best raw score has the highest normalised score
    assert table["score"].iloc[table["raw_score"].argmin()] == table["score"].max()
    assert len(dd.read_live(tmp_path, include_references=True)) == 982
    realigned = dd.read_live(tmp_path, realigned=True)
    assert realigned["image"].tolist() == table["image"].tolist()
    dmos_new = scipy.io.loadmat(tmp_path / "dmos_realigned.mat")["dmos_new"].ravel()
    np.testing.assert_array_equal(realigned["raw_score"], np.delete(dmos_new, [0, 300, 700]))


def test_csiq_xlsx_and_csv(tmp_path):
    table = dd.read_csiq(make_csiq(tmp_path, "xlsx"))
    check_contract(table, "csiq")
    assert [Path(p).name for p in table["image"][:2]] == ["1600.AWGN.1.png", "1600.JPEG.2.png"]
    assert Path(table["image"].iloc[2]).parent.name == "jpeg2000"
    assert table["content"].tolist() == [r[0] for r in CSIQ_ROWS]
    np.testing.assert_allclose(table["score"], 1 - np.array([r[5] for r in CSIQ_ROWS]))
    other = tmp_path / "csv"
    other.mkdir()
    table_csv = dd.read_csiq(make_csiq(other, "csv"))
    np.testing.assert_allclose(table_csv["raw_score"], table["raw_score"])


def test_tid2013(tmp_path):
    table = dd.read_tid2013(make_tid2013(tmp_path))
    check_contract(table, "tid2013")
    assert len(table) == 6 and table["content"].tolist()[-1] == "I25"
    assert Path(table["ref"].iloc[-1]).name == "I25.BMP"


def test_koniq10k_official_split(tmp_path):
    table = dd.read_koniq10k(write_mini_koniq(tmp_path))
    check_contract(table, "koniq10k")
    assert (table["ref"] == "").all() and table["content"].is_unique
    parts = dd.official_split(table)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    other = tmp_path / "nosets"
    other.mkdir()
    no_sets = dd.read_koniq10k(write_mini_koniq(other, with_sets=False))
    assert (no_sets["split"] == "").all()
    with pytest.raises(ValueError, match="no official split"):
        dd.official_split(no_sets)
    # resolution names one of the release's two folders; others read an absent folder, naming each image missing
    assert dd.read_koniq10k(tmp_path, resolution=" 1024X768")["image"].equals(table["image"])
    with pytest.raises(ValueError, match=r"^resolution: koniq10k has the folders 1024x768, 512x384, got '800x600'$"):
        dd.read_koniq10k(tmp_path, resolution="800x600")
    with pytest.raises(FileNotFoundError, match=r"^resolution=512x384: .*512x384: no such folder$"):
        dd.read_koniq10k(tmp_path, resolution="512x384")


def test_clive_drops_training_images(tmp_path):
    root = make_clive(tmp_path)
    table = dd.read_clive(root)
    check_contract(table, "clive")
    assert len(table) == 10 and not any(Path(p).name.startswith("t") for p in table["image"])
    assert table["raw_score"].iloc[0] == pytest.approx(np.linspace(10, 90, 17)[7])
    assert len(dd.read_clive(root, include_training_images=True)) == 17


def test_weak_labels(tmp_path):
    csv = make_weak_labels(tmp_path)
    table = dd.read_weak_labels(csv, tmp_path / "dist_imgs", tmp_path / "refs")
    assert list(table.columns) == ["image", "ref", "content", "ssim", "msssim", "mdsi"]
    assert set(table["content"]) == {"a", "b"} and len(table) == 6
    assert table["ref"].iloc[0] == str((tmp_path / "refs" / "a.png").resolve())
    assert table["ssim"].dtype == np.float64 and table["ssim"].iloc[0] == pytest.approx(0.8)


def test_kadis700k_layout(tmp_path):
    make_weak_labels(tmp_path).rename(tmp_path / "kadis700k_friqa.csv")
    table = dd.read_dataset("kadis700k", tmp_path)
    assert table.attrs["dataset"] == "kadis700k" and len(table) == 6


# ---------------------------------------------------------------- errors name dataset, file and row


def test_missing_metadata_file(tmp_path):
    with pytest.raises(TableError, match=r"kadid10k: .*dmos\.csv: metadata file not found"):
        dd.read_kadid10k(tmp_path)
    with pytest.raises(TableError, match="dataset root folder not found"):
        dd.read_tid2013(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset"):
        dd.read_dataset("imagenet", tmp_path)


def test_header_mismatch_named(tmp_path):
    make_kadid(tmp_path)
    (tmp_path / "dmos.csv").write_text("image,reference,score\nI01_01_01.png,I01.png,3.0\n")
    with pytest.raises(TableError, match=r"kadid10k: .*dmos\.csv, line 1: header .* lacks column"):
        dd.read_kadid10k(tmp_path)


def test_absent_image_named_with_row(tmp_path):
    make_kadid(tmp_path)
    (tmp_path / "images" / "I02_01_02.png").unlink()
    with pytest.raises(TableError, match=r"kadid10k: .*dmos\.csv, line 7: image 'I02_01_02.png' is listed but absent"):
        dd.read_kadid10k(tmp_path)


def test_bad_score_named_with_row(tmp_path):
    make_tid2013(tmp_path)
    lines = (tmp_path / "mos_with_names.txt").read_text().splitlines()
    lines[3] = "abc " + lines[3].split()[1]
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines))
    with pytest.raises(TableError, match=r"tid2013: .*mos_with_names\.txt, line 4: score 'abc' is not a number"):
        dd.read_tid2013(tmp_path)
    lines[3] = "nan"
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines))
    with pytest.raises(TableError, match=r"line 4: expected '<MOS> <image name>'"):
        dd.read_tid2013(tmp_path)


def test_mat_errors(tmp_path):
    root = make_clive(tmp_path)
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"MOS": np.ones((1, 17))})
    with pytest.raises(TableError, match=r"clive: .*AllMOS_release\.mat: variable 'AllMOS_release' missing"):
        dd.read_clive(root)
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.ones((1, 16))})
    with pytest.raises(TableError, match="holds 16 scores but"):
        dd.read_clive(root)
    (root / "Data" / "AllMOS_release.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(TableError, match=r"clive: .*AllMOS_release\.mat: cannot read"):
        dd.read_clive(root)
    mos = np.linspace(10, 90, 17)
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos[None, :]})
    (root / "Images" / "12.JPG").unlink()
    with pytest.raises(TableError, match=r"AllImages_release\.mat, entry 10: image '12.JPG' is listed but absent"):
        dd.read_clive(root)


def test_live_wrong_length(tmp_path):
    root = write_mini_live(tmp_path)
    scipy.io.savemat(root / "dmos.mat", {"dmos": np.ones((1, 100)), "orgs": np.zeros((1, 100))})
    with pytest.raises(TableError, match=r"live: .*dmos\.mat: holds 100 entries, Release 2 has 982"):
        dd.read_live(root)


def test_csiq_unknown_type_and_koniq_bad_set(tmp_path):
    make_csiq(tmp_path, "csv")
    text = (tmp_path / "csiq.DMOS.csv").read_text().replace("fnoise", "pinknoise")
    (tmp_path / "csiq.DMOS.csv").write_text(text)
    with pytest.raises(TableError, match=r"csiq: .*csiq\.DMOS\.csv, line 5: unknown dst_type 'pinknoise'"):
        dd.read_csiq(tmp_path)
    other = tmp_path / "koniq"
    other.mkdir()
    write_mini_koniq(other)
    sets = other / "koniq10k_distributions_sets.csv"
    sets.write_text(sets.read_text().replace("validation", "holdout", 1))
    with pytest.raises(TableError, match=r"koniq10k: .*sets\.csv, line 8: set 'holdout'"):
        dd.read_koniq10k(other)


def test_weak_labels_header_and_bad_rows(tmp_path):
    csv = make_weak_labels(tmp_path, bad_line="a_03_09.bmp,a.png,0.5,nan,0.1")
    with pytest.raises(TableError, match=r"weak_labels: .*labels\.csv, line 4: msssim is missing, NaN or inf"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    table = dd.read_weak_labels(csv, tmp_path / "dist_imgs", on_error="skip")
    assert len(table) == 6 and table.attrs["skipped_rows"] == 1
    csv = make_weak_labels(tmp_path, bad_line="ghost.bmp,a.png,0.5,0.5,0.1")
    with pytest.raises(TableError, match=r"line 4: image 'ghost\.bmp' is listed but absent"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    csv.write_text("dist_img,ref_img,ssim\nx.bmp,a.png,0.5\n")
    with pytest.raises(TableError, match=r"line 1: header .* is not the KADIS layout"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    csv.write_text("dist_im,ref_im,ssim,psnr\nx.bmp,a.png,0.5,30\n")
    with pytest.raises(TableError, match="not the KADIS layout"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")


def test_datasets_info_matches_paper():
    assert dd.DATASETS["kadid10k"].paper_srocc == 0.936 and dd.DATASETS["koniq10k"].paper_plcc == 0.887
    assert dd.DATASETS["live"].lower_better and dd.DATASETS["csiq"].lower_better
    assert not dd.DATASETS["tid2013"].lower_better and dd.DATASETS["koniq10k"].has_official_split


# ---------------------------------------------------------------- the benchmarks' real metadata (../shared)

SHARED_META = next(
    (
        p / "data" / "meta"
        for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared"))
        if (p / "data" / "meta").is_dir()
    ),
    None,
)
real_meta = pytest.mark.skipif(SHARED_META is None, reason="../shared/data/meta (the real metadata) is absent")
CSIQ_RELEASE_HEADER = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")


def placeholder(path: Path) -> None:
    """An empty file where the release has an image: the readers check existence, not content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def copy_meta(relative: str, root: Path, name: str | None = None) -> Path:
    source = SHARED_META / relative
    target = root / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return target


def write_csiq_release_workbook(path: Path, rows: list[tuple]) -> None:
    """csiq.DMOS.xlsx as released: a first sheet, then `all_by_image` with its header at D4 and rows from D5."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.title = "readme"
    book.active["A1"] = "CSIQ image quality database: DMOS"
    sheet = book.create_sheet("all_by_image")
    sheet["A1"] = "all_by_image"
    for j, name in enumerate(CSIQ_RELEASE_HEADER):
        sheet.cell(row=4, column=4 + j, value=name)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            sheet.cell(row=5 + i, column=4 + j, value=value)
    sheet.cell(row=6 + len(rows), column=4, value="note after a blank row, not a data row")
    book.save(path)


@pytest.fixture(scope="module")
def real_layouts(tmp_path_factory) -> dict[str, Path]:
    """Every benchmark laid out as released, with the real metadata of ../shared and empty placeholder images."""
    base = tmp_path_factory.mktemp("real")
    roots = {name: base / name for name in ("kadid10k", "csiq", "tid2013", "koniq10k", "live", "clive")}
    kadid = pd.read_csv(copy_meta("kadid10k/reconstructed/dmos.csv", roots["kadid10k"]), dtype=str)
    for name in set(kadid["dist_img"]) | set(kadid["ref_img"]):
        placeholder(roots["kadid10k"] / "images" / name)
    csiq = pd.read_csv(copy_meta("csiq/reconstructed/csiq.DMOS.csv", roots["csiq"]), dtype=str)
    for image, kind, level in zip(csiq["image"], csiq["dst_type"], csiq["dst_lev"]):
        folder, token = dd.readers.CSIQ_TYPES[kind]
        placeholder(roots["csiq"] / "dst_imgs" / folder / f"{image}.{token}.{level}.png")
        placeholder(roots["csiq"] / "src_imgs" / f"{image}.png")
    tid = copy_meta("tid2013/mos_with_names.txt", roots["tid2013"]).read_text().split()
    for name in tid[1::2]:
        placeholder(roots["tid2013"] / "distorted_images" / name)
    for k in range(1, 26):  # the release's 25th reference is i25.bmp, the others I01.BMP..I24.BMP
        placeholder(roots["tid2013"] / "reference_images" / (f"I{k:02d}.BMP" if k < 25 else "i25.bmp"))
    sets = pd.read_csv(copy_meta("koniq10k/koniq10k_distributions_sets.csv", roots["koniq10k"]), dtype=str)
    copy_meta("koniq10k/reconstructed/koniq10k_scores_and_distributions.csv", roots["koniq10k"])
    for name in sets["image_name"]:
        placeholder(roots["koniq10k"] / "1024x768" / name)
    for name in ("dmos.mat", "dmos_realigned.mat", "refnames_all.mat"):
        copy_meta(f"live/reconstructed/{name}", roots["live"])
    for folder, count in dd.readers.LIVE_FOLDERS:
        for k in range(1, count + 1):
            placeholder(roots["live"] / folder / f"img{k}.bmp")
    refnames = scipy.io.loadmat(roots["live"] / "refnames_all.mat")["refnames_all"].ravel()
    for name in {str(np.asarray(n).ravel()[0]) for n in refnames}:
        placeholder(roots["live"] / "refimgs" / name)
    for name in ("AllImages_release.mat", "AllMOS_release.mat", "AllStdDev_release.mat"):
        copy_meta(f"clive/{name}", roots["clive"] / "Data")
    names = scipy.io.loadmat(roots["clive"] / "Data" / "AllImages_release.mat")["AllImages_release"].ravel()
    for i, name in enumerate(str(np.asarray(n).ravel()[0]) for n in names):
        placeholder(roots["clive"] / "Images" / ("trainingImages" if i < 7 else "") / name)
    return roots


@real_meta
def test_real_kadid10k(real_layouts):
    table = dd.read_dataset("KADID-10k", real_layouts["kadid10k"])
    check_contract(table, "kadid10k")
    expected = pd.read_csv(real_layouts["kadid10k"] / "dmos.csv")
    assert len(table) == 10125 and table["content"].nunique() == 81
    assert [Path(p).name for p in table["image"]] == expected["dist_img"].tolist()
    np.testing.assert_array_equal(table["raw_score"], expected["dmos"].to_numpy(np.float64))
    assert table["raw_score"].iloc[0] == 4.57


@real_meta
def test_real_csiq_csv_export_and_release_workbook(real_layouts):
    root = real_layouts["csiq"]
    from_csv = dd.read_csiq(root)
    check_contract(from_csv, "csiq")
    rows = pd.read_csv(root / "csiq.DMOS.csv", dtype={"image": str})
    assert len(from_csv) == 866 and from_csv["content"].nunique() == 30
    np.testing.assert_array_equal(from_csv["raw_score"], rows["dmos"].to_numpy(np.float64))
    release = [
        (int(r.image) if r.image.isdigit() else r.image, i + 1, r.dst_type, int(r.dst_lev), 0.0, float(r.dmos))
        for i, r in enumerate(rows.itertuples(index=False))
    ]
    workbook = root / "csiq.DMOS.xlsx"
    write_csiq_release_workbook(workbook, release)
    try:
        from openpyxl import load_workbook

        sheet = load_workbook(workbook, read_only=True)["all_by_image"]
        assert sheet["D4"].value == "image" and sheet["I4"].value == "dmos" and sheet["I870"].value == release[-1][5]
        from_xlsx = dd.read_csiq(root)  # the workbook wins over the CSV export
    finally:
        workbook.unlink()
    pd.testing.assert_frame_equal(from_xlsx, from_csv)
    assert from_xlsx["content"].iloc[0] == "1600" and Path(from_xlsx["image"].iloc[0]).name == "1600.AWGN.1.png"


@real_meta
def test_real_tid2013(real_layouts):
    table = dd.read_tid2013(real_layouts["tid2013"])
    check_contract(table, "tid2013")
    tokens = (real_layouts["tid2013"] / "mos_with_names.txt").read_text().split()
    assert len(table) == 3000 and table["content"].nunique() == 25
    np.testing.assert_array_equal(table["raw_score"], np.array(tokens[0::2], dtype=np.float64))
    assert Path(table["ref"].iloc[-1]).name == "i25.bmp"


@real_meta
def test_real_koniq10k(real_layouts):
    table = dd.read_koniq10k(real_layouts["koniq10k"])
    check_contract(table, "koniq10k")
    scores = pd.read_csv(real_layouts["koniq10k"] / "koniq10k_scores_and_distributions.csv")
    assert len(table) == 10073
    np.testing.assert_array_equal(table["raw_score"], scores["MOS"].to_numpy(np.float64))
    assert table["split"].value_counts().to_dict() == {"train": 7058, "test": 2015, "val": 1000}


@real_meta
def test_real_live_both_dmos_files(real_layouts):
    root = real_layouts["live"]
    mats = {name: scipy.io.loadmat(root / name) for name in ("dmos.mat", "dmos_realigned.mat")}
    distorted = mats["dmos.mat"]["orgs"].ravel() == 0
    for realigned, name, variable in ((False, "dmos.mat", "dmos"), (True, "dmos_realigned.mat", "dmos_new")):
        table = dd.read_live(root, realigned=realigned)
        check_contract(table, "live")
        assert len(table) == 779 and table["content"].nunique() == 29
        np.testing.assert_array_equal(table["raw_score"], mats[name][variable].ravel()[distorted])
    assert len(dd.read_live(root, include_references=True)) == 982


@real_meta
def test_real_clive(real_layouts):
    table = dd.read_clive(real_layouts["clive"])
    check_contract(table, "clive")
    mos = scipy.io.loadmat(real_layouts["clive"] / "Data" / "AllMOS_release.mat")["AllMOS_release"].ravel()
    assert len(table) == 1162
    np.testing.assert_array_equal(table["raw_score"], mos[7:])
    assert len(dd.read_clive(real_layouts["clive"], include_training_images=True)) == 1169


# ---------------------------------------------------------------- header search and weak-label header variants


def test_csiq_header_found_anywhere_in_csv_export(tmp_path):
    make_csiq(tmp_path, "csv")
    lines = (tmp_path / "csiq.DMOS.csv").read_text().splitlines()
    shifted = ["CSIQ DMOS,,,,,,,,", ",,,,,,,,", ",,,,,,,,"] + [",,," + line for line in lines]
    (tmp_path / "csiq.DMOS.csv").write_text("\n".join(shifted) + "\n")
    table = dd.read_csiq(tmp_path)
    np.testing.assert_allclose(table["raw_score"], [r[5] for r in CSIQ_ROWS])
    (tmp_path / "csiq.DMOS.csv").write_text("\n".join(shifted).replace("fnoise", "pinknoise") + "\n")
    with pytest.raises(TableError, match=r"csiq\.DMOS\.csv, line 8: unknown dst_type 'pinknoise'"):
        dd.read_csiq(tmp_path)
    (tmp_path / "csiq.DMOS.csv").write_text("\n".join(shifted).replace("dst_lev", "level") + "\n")
    with pytest.raises(
        TableError,
        match=r"csiq\.DMOS\.csv: no line holds the header \['image', 'dst_type', "
        r"'dst_lev', 'dmos'\]",
    ):
        dd.read_csiq(tmp_path)


def test_csiq_release_workbook_errors_name_the_row(tmp_path):
    make_csiq(tmp_path, "csv")
    (tmp_path / "csiq.DMOS.csv").unlink()
    write_csiq_release_workbook(tmp_path / "csiq.DMOS.xlsx", [r[:3] + ("x",) + r[4:] for r in CSIQ_ROWS])
    with pytest.raises(TableError, match=r"csiq\.DMOS\.xlsx, row 5: dst_lev 'x' is not an integer"):
        dd.read_csiq(tmp_path)
    (tmp_path / "csiq.DMOS.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(TableError, match=r"csiq\.DMOS\.xlsx: cannot read as a workbook"):
        dd.read_csiq(tmp_path)


def test_weak_labels_index_column_and_header_variants(tmp_path):
    csv = make_weak_labels(tmp_path)
    reference = dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    lines = csv.read_text().splitlines()
    variant = [",  Dist_Im , REF-IM,SSIM , MS-SSIM,mdsi"] + [f"{i},{line}" for i, line in enumerate(lines[1:])]
    csv.write_text("\n".join(variant) + "\n")
    table = dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    pd.testing.assert_frame_equal(table, reference)
    variant[0] = "index,dist_im,ref_im,ssim,msssim,mdsi"
    csv.write_text("\n".join(variant) + "\n")
    pd.testing.assert_frame_equal(dd.read_weak_labels(csv, tmp_path / "dist_imgs"), reference)
    variant[0] = "index,dist_im,ref_im,ssim,msssim,mdsi,comment"
    csv.write_text("\n".join(line + ",x" if i else line for i, line in enumerate(variant)) + "\n")
    with pytest.raises(
        TableError,
        match=r"labels\.csv, line 1: header .* is not the KADIS layout .*: column "
        r"'comment' cannot be mapped$",
    ):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    csv.write_text("dist_im,ssim,SSIM\nx.bmp,0.5,0.5\n")
    with pytest.raises(TableError, match=r"columns 'ssim' and 'SSIM' both map to 'ssim'"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")
    csv.write_text("dist_im,ssim\nx.bmp,0.5\n")
    with pytest.raises(TableError, match=r"no column for ref_im$"):
        dd.read_weak_labels(csv, tmp_path / "dist_imgs")


def test_rows_longer_than_their_header_are_refused_not_shifted(tmp_path):
    # Session 25's regression walk: a labels.csv whose decimal commas made one field more per row was read by
    # pandas with its first column as the index, every value shifted by one; training ran on them (exit 0).
    from deepfl.data import read_weak_labels
    from deepfl.errors import TableError
    from deepfl.labeling import read_manifest

    (tmp_path / "a.png").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("dist_im,ref_im,ssim\na.png,r.png,0,93\n")
    with pytest.raises(TableError, match=r"labels\.csv: rows hold more fields than the header, so .*decimal commas"):
        read_weak_labels(labels, tmp_path, check_files=False)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("dist_im,ref_im\na.png,r.png,extra\n")
    with pytest.raises(TableError, match=r"manifest\.csv: rows hold more fields than the header"):
        read_manifest(manifest)


@real_meta
def test_a_benchmark_with_fewer_images_than_its_release_is_read_with_one_warning(real_layouts, tmp_path, caplog):
    """A user walk truncated koniq10k_scores_and_distributions.csv to 200 rows: every job ran on them and the
    official split trained on 137 images without a word. The release's count is known for each benchmark."""
    for name, root in real_layouts.items():
        with caplog.at_level(logging.WARNING, logger="deepfl"):
            caplog.clear()
            dd.read_dataset(name, root)
        assert not caplog.records, (name, caplog.text)  # each whole release: silent
    root = tmp_path / "koniq10k"
    root.mkdir()
    (root / "1024x768").symlink_to(real_layouts["koniq10k"] / "1024x768")
    for name in ("koniq10k_scores_and_distributions.csv", "koniq10k_distributions_sets.csv"):
        lines = (real_layouts["koniq10k"] / name).read_text().splitlines(keepends=True)
        (root / name).write_text("".join(lines[:201]))
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        caplog.clear()
        table = dd.read_dataset("KonIQ-10k", root)
    assert len(table) == 200
    assert [record.getMessage() for record in caplog.records] == [
        f"koniq10k: {root} lists 200 images, the release 10,073: results on it are not comparable with the paper's "
        "(a truncated or edited metadata file?)"
    ]
