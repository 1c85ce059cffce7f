"""The generated demo cohort: determinism, HU/mask consistency, COVID-SemiSeg layout, subject-level
splits, the planted clinical structure, and that the project's readers take the files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage as ndi

from ssinfnet.data.demo_cohort import (HU_CONSOLIDATION_RANGE, HU_GGO_RANGE, OUTCOMES, StructuralParams,
                                       make_demo_cohort, simulate_clinical)
from ssinfnet.data.readers import SEMISEG_TO_RADIOLOGICAL
from ssinfnet.errors import InputError

SMALL = dict(n_subjects=6, size=64, slices_per_subject=4)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_demo_cohort(tmp_path_factory.mktemp("demo") / "cohort", seed=3, **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _volume(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _slice_index(cohort: Path) -> pd.DataFrame:
    return pd.read_csv(cohort / "semiseg" / "slice_index.csv")


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    first = _files(make_demo_cohort(tmp_path / "a", seed=7, **SMALL))
    second = _files(make_demo_cohort(tmp_path / "b", seed=7, **SMALL))
    other = _files(make_demo_cohort(tmp_path / "c", seed=8, **SMALL))
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    assert first["volumes/demo000/ct.nii.gz"] != other["volumes/demo000/ct.nii.gz"]


def test_lesion_voxels_have_lesion_density_and_lie_in_the_lungs(cohort):
    # Interior voxels (one in-plane erosion) are free of the blur at lesion borders.
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = True
    seen = {1: 0, 2: 0}
    for folder in sorted((cohort / "volumes").iterdir()):
        hu = _volume(folder / "ct.nii.gz")
        label = _volume(folder / "label.nii.gz")
        lung = _volume(folder / "lung.nii.gz") > 0
        assert hu.dtype == np.int16
        assert set(np.unique(label)) <= {0, 1, 2}
        assert not (label[~lung] > 0).any(), folder.name
        for value, (low, high) in ((1, HU_GGO_RANGE), (2, HU_CONSOLIDATION_RANGE)):
            interior = ndi.binary_erosion(label == value, in_plane)
            seen[value] += int(interior.sum())
            assert ((low <= hu[interior]) & (hu[interior] <= high)).all(), (folder.name, value)
        healthy_lung = ndi.binary_erosion(lung & (label == 0), in_plane)
        assert -900 < np.median(hu[healthy_lung]) < -780
        assert (hu[lung & (label == 0)] > -300).mean() > 0.003  # vessels: soft-tissue density outside lesions
        assert np.median(hu[:3, :3]) < -950  # air in the corners
    assert seen[1] > 0 and seen[2] > 0


def test_volumes_have_a_real_world_affine_and_spacing(cohort):
    image = nib.load(cohort / "volumes" / "demo000" / "ct.nii.gz")
    truth = json.loads((cohort / "truth.json").read_text())
    assert image.shape == (64, 64, 4)
    assert nib.aff2axcodes(image.affine) == ("P", "L", "S")
    assert np.allclose(image.header.get_zooms(), truth["cohort"]["spacing_mm"])
    assert 4 < image.header.get_zooms()[0] < 6  # a 350 mm field of view over 64 pixels


def test_semiseg_layout_mirrors_covid_semiseg(cohort):
    root = cohort / "semiseg"
    folders = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}
    leaf_folders = {f for f in folders if not any(g.startswith(f + "/") for g in folders)}
    assert leaf_folders == {
        "TrainingSet/MultiClassInfection-Train/Imgs", "TrainingSet/MultiClassInfection-Train/GT",
        "TrainingSet/MultiClassInfection-Train/Prior", "TrainingSet/LungInfection-Train/Doctor-label/Imgs",
        "TrainingSet/LungInfection-Train/Doctor-label/GT", "TrainingSet/LungInfection-Train/Doctor-label/Edge",
        "TestingSet/MultiClassInfection-Test/Imgs", "TestingSet/MultiClassInfection-Test/GT",
        "TestingSet/MultiClassInfection-Test/GT-1", "TestingSet/MultiClassInfection-Test/GT-2",
        "TestingSet/LungInfection-Test/Imgs", "TestingSet/LungInfection-Test/GT"}
    train_stems = {p.stem for p in (root / "TrainingSet/MultiClassInfection-Train/Imgs").glob("*.jpg")}
    test_stems = {p.stem for p in (root / "TestingSet/MultiClassInfection-Test/Imgs").glob("*.jpg")}
    assert train_stems and test_stems and not train_stems & test_stems
    assert sorted(map(int, train_stems | test_stems)) == list(range(len(train_stems) + len(test_stems)))
    for folder in leaf_folders:
        suffix = ".jpg" if folder.endswith("Imgs") else ".png"
        expected = train_stems if folder.startswith("Training") else test_stems
        assert {p.stem for p in (root / folder).iterdir()} == expected and all(
            p.suffix == suffix for p in (root / folder).iterdir()), folder

    stem = sorted(test_stems)[0]
    multi_test = root / "TestingSet/MultiClassInfection-Test"
    gt = Image.open(multi_test / "GT" / f"{stem}.png")
    assert gt.mode == "P" and set(np.unique(np.array(gt))) <= {0, 1, 2}
    for sub, value in (("GT-1", 1), ("GT-2", 2)):
        binary = Image.open(multi_test / sub / f"{stem}.png")
        assert binary.mode == "1" and np.array_equal(np.array(binary), np.array(gt) == value)
    single = np.array(Image.open(root / f"TestingSet/LungInfection-Test/GT/{stem}.png"))
    assert np.array_equal(single, (np.array(gt) > 0) * 255)
    assert Image.open(multi_test / "Imgs" / f"{stem}.jpg").mode == "L"


def test_semiseg_folder_names_match_the_real_data_set(cohort, shared_data):
    def tree(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}

    assert tree(cohort / "semiseg") == tree(shared_data / "covid-semiseg")


def test_semiseg_keeps_mostly_lesion_slices_of_the_labeled_subjects(cohort):
    index = _slice_index(cohort)
    clinical = pd.read_csv(cohort / "clinical.csv").set_index("subject_id")
    for row in index.itertuples():
        label = _volume(cohort / "volumes" / row.subject_id / "label.nii.gz")[:, :, row.slice_index]
        folder = "TrainingSet/MultiClassInfection-Train" if row.split == "TrainingSet" \
            else "TestingSet/MultiClassInfection-Test"
        stored = np.array(Image.open(cohort / "semiseg" / folder / "GT" / f"{row.semiseg_id}.png"))
        # Stored turned like the real COVID-SemiSeg slices (anterior on the left).
        assert np.array_equal(stored, np.rot90(label, -SEMISEG_TO_RADIOLOGICAL))
        assert clinical.loc[row.subject_id, "split"] == ("train" if row.split == "TrainingSet" else "test")
    with_lesions = [(_volume(cohort / "volumes" / r.subject_id / "label.nii.gz")[:, :, r.slice_index] > 0).any()
                    for r in index.itertuples()]
    assert np.mean(with_lesions) >= 0.8


def test_subjects_are_never_shared_between_train_test_and_unlabeled(cohort):
    index = _slice_index(cohort)
    train = set(index.subject_id[index.split == "TrainingSet"])
    test = set(index.subject_id[index.split == "TestingSet"])
    with open(cohort / "unlabeled" / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    unlabeled = {row["original_name"].split("/")[0] for row in manifest}
    assert train and test and unlabeled
    assert not train & test and not (train | test) & unlabeled
    clinical = pd.read_csv(cohort / "clinical.csv")
    assert set(clinical.subject_id) == train | test | unlabeled
    noncovid = set(clinical.subject_id[clinical.covid_label == "NonCOVID"])
    assert noncovid and noncovid <= unlabeled
    assert {row["covid_label"] for row in manifest} == {"COVID", "NonCOVID"}
    assert all((cohort / "unlabeled" / row["file"]).is_file() for row in manifest)
    for subject in noncovid:
        assert not _volume(cohort / "volumes" / subject / "label.nii.gz").any()


def test_clinical_table_carries_the_planted_burden(cohort):
    clinical = pd.read_csv(cohort / "clinical.csv", keep_default_na=False, na_values=[""])
    assert list(clinical.columns[:10]) == ["subject_id", "covid_label", "split", "age", "sex", "hospital",
                                           "underlying_disease", "has_underlying_disease", "morbidity_outcome",
                                           "severity_code"]
    covid = clinical[clinical.covid_label == "COVID"]
    assert set(covid.morbidity_outcome) <= set(OUTCOMES)
    assert set(clinical.morbidity_outcome[clinical.covid_label == "NonCOVID"]) == {"Control"}
    assert ((covid.underlying_disease == "No") == (covid.has_underlying_disease == 0)).all()
    # The images carry the mediator: the lesion fraction of lung in the label volumes is the planted one.
    assert np.allclose(covid.realised_lesion_fraction, covid.lesion_fraction, atol=2e-3)
    for row in covid.itertuples():
        label = _volume(cohort / "volumes" / row.subject_id / "label.nii.gz")
        lung = _volume(cohort / "volumes" / row.subject_id / "lung.nii.gz")
        assert (label > 0).sum() / lung.sum() == pytest.approx(row.lesion_fraction, abs=2e-3)
    truth = json.loads((cohort / "truth.json").read_text())
    assert truth["params"]["severity_per_burden"] == StructuralParams().severity_per_burden
    assert truth["cohort"]["subjects_by_split"]["test"] == covid.subject_id[covid.split == "test"].tolist()


def test_simulated_table_recovers_the_structural_coefficients():
    import statsmodels.formula.api as smf

    table, truth = simulate_clinical(6000, seed=1)
    p = truth["params"]
    table["age_c10"] = (table.age - 60) / 10
    burden = smf.ols("lesion_burden_logit ~ age_c10 + has_underlying_disease", table).fit().params
    assert burden["age_c10"] == pytest.approx(p["burden_per_age"], abs=0.05)
    assert burden["has_underlying_disease"] == pytest.approx(p["burden_per_disease"], abs=0.08)
    table["male"] = (table.sex == "Male").astype(int)
    table["burden_c"] = table.lesion_burden_logit - p["burden_intercept"]
    severe = smf.logit("severe_or_worse ~ age_c10 + burden_c + male", table).fit(disp=0).params
    assert severe["age_c10"] == pytest.approx(p["severity_per_age"], abs=0.12)
    assert severe["burden_c"] == pytest.approx(p["severity_per_burden"], abs=0.15)
    assert severe["Intercept"] == pytest.approx(-p["severity_cuts"][1], abs=0.25)
    assert set(table.severity_code) == {0, 1, 2}
    assert (table.severe_or_worse == (table.severity_code > 0)).all()
    effects = truth["effects"]["age"]
    assert effects["log_odds_indirect"] == pytest.approx(p["burden_per_age"] * p["severity_per_burden"])
    assert 0 < effects["severe_or_worse_probability"]["acme_average"] < effects["severe_or_worse_probability"][
        "total_effect"]


def test_without_mediation_burden_still_moves_but_severity_ignores_it():
    table, truth = simulate_clinical(3000, seed=2, indirect=False)
    assert truth["params"]["severity_per_burden"] == 0.0
    for exposure in ("age", "underlying_disease"):
        assert truth["effects"][exposure]["log_odds_indirect"] == 0.0
        assert truth["effects"][exposure]["severe_or_worse_probability"]["acme_average"] == pytest.approx(0.0)
    assert np.corrcoef(table.age, table.lesion_burden_logit)[0, 1] > 0.2
    same_seed, _ = simulate_clinical(3000, seed=2, indirect=False)
    pd.testing.assert_frame_equal(table, same_seed)


def test_bad_arguments_raise_input_errors(tmp_path):
    with pytest.raises(InputError, match="n_subjects"):
        make_demo_cohort(tmp_path / "few", n_subjects=3)
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        make_demo_cohort(tmp_path / "taken", **SMALL)


def test_project_readers_take_the_cohort(cohort):
    from ssinfnet.data.readers import iter_unlabeled, read_nifti_volume, read_semiseg

    index = _slice_index(cohort)
    for split, name in (("train", "TrainingSet"), ("test", "TestingSet")):
        for task in ("multi", "single"):
            samples = read_semiseg(cohort / "semiseg", split, task)
            assert len(samples) == (index.split == name).sum()
            assert all(s.mask.max() <= (2 if task == "multi" else 1) for s in samples)
    # read_semiseg turns the stored slices back into the radiological view of the volumes.
    first = index.iloc[0]
    sample = read_semiseg(cohort / "semiseg", "train" if first.split == "TrainingSet" else "test")[0]
    volume_slice = _volume(cohort / "volumes" / first.subject_id / "label.nii.gz")[:, :, first.slice_index]
    assert sample.meta.id == str(first.semiseg_id) and np.array_equal(sample.mask, volume_slice)
    folder = cohort / "volumes" / "demo000"
    slices = read_nifti_volume(folder / "ct.nii.gz", folder / "label.nii.gz", lung_path=folder / "lung.nii.gz")
    label = _volume(folder / "label.nii.gz")
    assert len(slices) == label.shape[2]
    for k, sample in enumerate(slices):
        assert np.array_equal(sample.mask, label[:, :, k])  # stored as displayed: rows A->P, cols R->L
        assert np.array_equal(sample.hu, _volume(folder / "ct.nii.gz")[:, :, k])
        assert sample.lung.any() and sample.meta.slice_thickness > sample.meta.spacing[0]
    unlabeled = list(iter_unlabeled(cohort / "unlabeled", cohort / "unlabeled" / "manifest.csv"))
    assert {s.meta.label for s in unlabeled} == {"COVID", "NonCOVID"}


def test_chest_crops_are_each_slices_lungs_with_segments_margin(cohort, tmp_path):
    """chest_crops: the semiseg slices are the whole slices cut to their lungs' box plus segment's margin."""
    from ssinfnet.data.readers import read_semiseg
    from ssinfnet.data.volumes import crop_margin

    cropped = make_demo_cohort(tmp_path / "cropped", seed=3, chest_crops=True, **SMALL)
    index = _slice_index(cropped)
    for whole, crop in zip(read_semiseg(cohort / "semiseg", "train"), read_semiseg(cropped / "semiseg", "train")):
        row = index[index.semiseg_id == int(crop.meta.id)].iloc[0]
        # read_semiseg undoes the writer's turn: the slice as the volume holds it
        lung = _volume(cropped / "volumes" / row.subject_id / "lung.nii.gz")[:, :, row.slice_index] > 0
        rows, cols = np.flatnonzero(lung.any(1)), np.flatnonzero(lung.any(0))
        box = tuple(slice(max(0, ix[0] - crop_margin(n)), min(n, ix[-1] + 1 + crop_margin(n)))
                    for ix, n in ((rows, lung.shape[0]), (cols, lung.shape[1])))
        assert crop.image.shape == whole.image[box].shape < whole.image.shape
        np.testing.assert_array_equal(crop.mask, whole.mask[box])
