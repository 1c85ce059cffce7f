"""A generated demo cohort: CT-like volumes in HU with known lesion masks, and clinical data with a
known causal structure.

Images
------
Each subject is a chest CT volume (HU, int16) rendered from simple anatomy: air outside a body ellipse
(fat rim ~-100 HU, soft tissue/mediastinum ~+40 HU), ribs, sternum and a vertebra (+250..+900 HU), two
lungs with irregular outlines (~-850 HU with a dependent density gradient and texture), a trachea in the
upper slices, vessels (thin tubes and dots at soft-tissue density, tapering away from the hilum), GGO
(-700..-300 HU, smooth irregular blobs, peripheral and dependent predominance) and consolidation
(-100..+50 HU) inside the GGO. The image is blurred slightly and gets correlated noise. Vessels are drawn
only outside lesions, so every labeled pixel has lesion density (vessels inside a consolidation are
invisible on CT anyway).

Lesions are a thresholded smooth random field: the voxels of the lungs whose field value is in the top
``lesion_fraction`` quantile, without in-plane specks under ``MIN_LESION_AREA_MM2`` (their voxels regrow
the larger patches). The planted burden therefore sets the total lesion volume (mostly through the size
of the patches; their number depends on it only weakly), and the realised lesion fraction of the lung in
the images equals the planted one (up to one voxel).

Clinical structural equations (per COVID subject; ``age_c10 = (age - 60) / 10``)
-------------------------------------------------------------------------------
::

    age      ~ Normal(age_mean, age_sd) clipped to [age_min, age_max], rounded to whole years
    male     ~ Bernoulli(p_male);  hospital ~ uniform over HOSPITALS (no effect)
    disease  ~ Bernoulli(p_disease)                     (independent of age)
    burden   = burden_intercept + burden_per_age * age_c10 + burden_per_disease * disease
               + Normal(0, burden_sd)                  (the mediator: logit of the lesion fraction of lung)
    latent   = severity_per_age * age_c10 + severity_per_burden * (burden - burden_intercept)
               + severity_per_male * male + Logistic(0, 1)
    outcome  = Mild | Regular | Severe | Critically ill, cutting ``latent`` at ``severity_cuts``

So ``severe_or_worse = latent > cuts[1]`` follows a logistic regression exactly, and the 3-level
``severity_code`` (Mild/Regular = 0, Severe = 1, Critically ill = 2, the iCTCF coding) follows a
proportional-odds (ordinal logit) model. Age acts directly (``severity_per_age``) and through the burden
(``burden_per_age * severity_per_burden`` on the log-odds scale); underlying disease acts only through the
burden. ``indirect=False`` sets ``severity_per_burden = 0``: no mediation, exposures still move the burden.

True effects (``truth["effects"]``) follow statsmodels' ``Mediation`` definitions, which contrast the
exposure at 0 and 1: code age as ``age_c10`` (60 vs 70 years) and disease as 0/1. On the log-odds scale
(binary or ordinal outcome) the indirect effect is the product of coefficients; on the probability of
severe-or-worse it is computed by Monte Carlo over the population (ACME / ADE for control and treated,
their averages, total effect, proportion mediated). NonCOVID subjects of the image cohort have no lesions
and outcome "Control" and are not part of the mediation population.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage as ndi
from scipy.special import expit

from ssinfnet import fileio
from ssinfnet.data.intensity import to_unit_range
from ssinfnet.data.readers import SEMISEG_TO_RADIOLOGICAL
from ssinfnet.data.volumes import crop_margin
from ssinfnet.errors import InputError

OUTCOMES = ("Mild", "Regular", "Severe", "Critically ill")
#: iCTCF coding of the outcomes above (Control/Mild/Regular = 0, Severe = 1, Critically ill = 2).
SEVERITY_CODES = (0, 0, 1, 2)
HOSPITALS = ("Union", "Liyuan")
DISEASES = ("Hypertension", "Diabetes", "Coronary atherosclerotic heart disease", "Hepatitis B",
            "Chronic obstructive pulmonary disease", "Cerebral infarction", "Chronic kidney disease")
DISEASE_WEIGHTS = (0.42, 0.22, 0.12, 0.06, 0.07, 0.06, 0.05)

# HU of the rendered tissues (means; texture and noise are added around them).
HU_AIR, HU_FAT, HU_SOFT, HU_LUNG = -1000.0, -100.0, 40.0, -860.0
HU_GGO_RANGE = (-700.0, -300.0)
HU_CONSOLIDATION_RANGE = (-100.0, 50.0)
HU_CANCELLOUS, HU_CORTICAL = 280.0, 850.0
FOV_MM = 350.0
#: Thickness of the chest wall as a fraction of the body's radius (about 3 cm of 17).
CHEST_WALL = 0.15
LUNG_LENGTH_MM = 220.0
# Voxel-size-independent texture scales, in mm.
LESION_SCALE_MM, VESSEL_SCALE_MM, TEXTURE_SCALE_MM = 20.0, 9.0, 3.0
# Smallest in-plane lesion patch (a ~14 mm disc): smaller specks of the thresholded field are regrown into
# the larger patches (see _without_specks).
MIN_LESION_AREA_MM2 = 150.0


@dataclass(frozen=True)
class StructuralParams:
    """Parameters of the structural equations in the module docstring."""

    age_mean: float = 57.0
    age_sd: float = 15.0
    age_min: float = 20.0
    age_max: float = 92.0
    p_male: float = 0.5
    p_disease: float = 0.4
    burden_intercept: float = -2.6
    burden_per_age: float = 0.35
    burden_per_disease: float = 0.7
    burden_sd: float = 0.7
    severity_per_age: float = 0.35
    severity_per_burden: float = 0.9
    severity_per_male: float = 0.25
    severity_cuts: tuple[float, float, float] = (-2.3, 1.2, 2.9)


# ---------------------------------------------------------------------------------------------
# Clinical table


def simulate_clinical(n: int, seed: int = 0, indirect: bool = True,
                      params: StructuralParams | None = None) -> tuple[pd.DataFrame, dict]:
    """Draw ``n`` COVID subjects from the structural equations (no images).

    Returns the table (columns as in ``clinical.csv`` minus the image columns) and the truth dict
    (parameters, equations and true effects; see the module docstring).
    """
    params = _effective_params(params, indirect)
    table = _draw_subjects(np.random.default_rng(seed), n, params)
    return table, truth_for(params)


def truth_for(params: StructuralParams) -> dict:
    """Parameters and true mediation effects for ``params`` (a fresh dict; the effects are cached)."""
    return {
        "equations": textwrap.dedent(__doc__.split("::")[1].split("\n\nSo ")[0]).strip(),
        "params": dataclasses.asdict(params),
        "mediator": "lesion_burden_logit = logit(lesion fraction of lung)",
        "mediation_population": "COVID subjects (covid_label == 'COVID')",
        "effects": copy.deepcopy(_true_effects(params)),
    }


def _effective_params(params: StructuralParams | None, indirect: bool) -> StructuralParams:
    params = params or StructuralParams()
    return params if indirect else dataclasses.replace(params, severity_per_burden=0.0)


def _draw_subjects(rng: np.random.Generator, n: int, p: StructuralParams) -> pd.DataFrame:
    age = np.round(np.clip(rng.normal(p.age_mean, p.age_sd, n), p.age_min, p.age_max))
    male = rng.random(n) < p.p_male
    hospital = rng.choice(HOSPITALS, n)
    disease = rng.random(n) < p.p_disease
    age_c10 = (age - 60.0) / 10.0
    burden = _burden_mean(p, age_c10, disease) + rng.normal(0.0, p.burden_sd, n)
    latent = _severity_linear(p, age_c10, burden, male) + rng.logistic(0.0, 1.0, n)
    category = np.searchsorted(np.asarray(p.severity_cuts), latent)
    width = len(str(n))
    return pd.DataFrame({
        "subject_id": [f"demo{i:0{max(3, width)}d}" for i in range(n)],
        "covid_label": "COVID",
        "age": age.astype(int),
        "sex": np.where(male, "Male", "Female"),
        "hospital": hospital,
        "underlying_disease": [_disease_text(rng) if d else "No" for d in disease],
        "has_underlying_disease": disease.astype(int),
        "morbidity_outcome": np.asarray(OUTCOMES)[category],
        "severity_code": np.asarray(SEVERITY_CODES)[category],
        "severe_or_worse": (category >= 2).astype(int),
        "lesion_burden_logit": burden,
        "lesion_fraction": expit(burden),
    })


def _burden_mean(p: StructuralParams, age_c10, disease):
    return p.burden_intercept + p.burden_per_age * age_c10 + p.burden_per_disease * disease


def _severity_linear(p: StructuralParams, age_c10, burden, male):
    return (p.severity_per_age * age_c10 + p.severity_per_burden * (burden - p.burden_intercept)
            + p.severity_per_male * male)


def _disease_text(rng: np.random.Generator) -> str:
    """iCTCF-style free text: one to three conditions, e.g. "Hypertension, Diabetes"."""
    count = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
    picks = rng.choice(len(DISEASES), count, replace=False, p=DISEASE_WEIGHTS)
    return ", ".join(DISEASES[i] for i in picks)


@functools.lru_cache(maxsize=32)
def _true_effects(p: StructuralParams, n_mc: int = 400_000) -> dict:
    """True effects of age (60 -> 70 y) and of underlying disease (0 -> 1), as statsmodels defines them."""
    rng = np.random.default_rng(20240607)
    age_c10 = (np.round(np.clip(rng.normal(p.age_mean, p.age_sd, n_mc), p.age_min, p.age_max)) - 60) / 10
    male = rng.random(n_mc) < p.p_male
    disease = rng.random(n_mc) < p.p_disease
    noise = rng.normal(0.0, p.burden_sd, n_mc)
    severe_cut = p.severity_cuts[1]

    def contrast(set_exposure):
        # P(severe or worse) with the outcome's exposure at te and the mediator's exposure at tm.
        def prob(te, tm):
            burden = _burden_mean(p, *set_exposure(tm)) + noise
            return expit(_severity_linear(p, set_exposure(te)[0], burden, male) - severe_cut).mean()

        acme = [prob(t, 1) - prob(t, 0) for t in (0, 1)]
        ade = [prob(1, t) - prob(0, t) for t in (0, 1)]
        total = prob(1, 1) - prob(0, 0)
        return {
            "acme_control": acme[0], "acme_treated": acme[1], "acme_average": float(np.mean(acme)),
            "ade_control": ade[0], "ade_treated": ade[1], "ade_average": float(np.mean(ade)),
            "total_effect": total, "prop_mediated_average": float(np.mean(acme) / total) if total else 0.0,
        }

    return {
        "age": {
            "exposure": "age_c10 = (age - 60) / 10, contrast 0 -> 1 (60 -> 70 years)",
            "log_odds_indirect": p.burden_per_age * p.severity_per_burden,
            "log_odds_direct": p.severity_per_age,
            "mediator_per_exposure": p.burden_per_age,
            "severe_or_worse_probability": contrast(lambda t: (np.full(n_mc, float(t)), disease)),
        },
        "underlying_disease": {
            "exposure": "has_underlying_disease, contrast 0 -> 1",
            "log_odds_indirect": p.burden_per_disease * p.severity_per_burden,
            "log_odds_direct": 0.0,
            "mediator_per_exposure": p.burden_per_disease,
            "severe_or_worse_probability": contrast(lambda t: (age_c10, np.full(n_mc, float(t)))),
        },
    }


# ---------------------------------------------------------------------------------------------
# Images


@dataclass
class SubjectVolumes:
    hu: np.ndarray
    """int16 (rows, cols, slices) Hounsfield units; slice 0 is the most inferior."""
    label: np.ndarray
    """uint8, 0 background / 1 GGO / 2 consolidation."""
    lung: np.ndarray
    """uint8, 1 inside the lungs."""


def render_subject(rng: np.random.Generator, size: int, n_slices: int, lesion_fraction: float) -> SubjectVolumes:
    """Render one chest CT volume whose lesions occupy ``lesion_fraction`` of the lung voxels."""
    pixel_mm = FOV_MM / size
    slice_mm = LUNG_LENGTH_MM / n_slices
    # Normalised in-plane coordinates (y down = posterior, x right = patient left) and height in the lung.
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    y, x = y[..., None], x[..., None]
    height = ((np.arange(n_slices) + 0.5) / n_slices)[None, None, :]

    body_ry, body_rx = 0.62 * rng.uniform(0.93, 1.07), 0.86 * rng.uniform(0.93, 1.05)
    body_r = np.hypot((y - 0.04) / body_ry, x / body_rx)
    body = np.broadcast_to(body_r < 1, (size, size, n_slices))
    fat = body & (body_r > 1 - rng.uniform(0.06, 0.14))
    lung, hilum_distance = _lungs(rng, y, x, height, body_ry, body_rx)
    lung &= body_r < 1 - CHEST_WALL  # ribs, muscle and fat always lie between lung and outside air
    trachea = (np.hypot(y + 0.12, x) < 0.055) & (height > 0.7)
    lung &= ~trachea

    def field(sigma_mm: float) -> np.ndarray:
        return _smooth_field(rng, lung.shape, sigma_mm, pixel_mm, slice_mm)

    lesion, consolidation = _lesions(lung, field(LESION_SCALE_MM) + 0.05 * field(TEXTURE_SCALE_MM),
                                     field(0.6 * LESION_SCALE_MM), y, pixel_mm, lesion_fraction)
    vessels = lung & ~lesion & _vessels(field(VESSEL_SCALE_MM), field(VESSEL_SCALE_MM), hilum_distance)
    texture = field(TEXTURE_SCALE_MM)

    hu = np.full(lung.shape, HU_AIR, np.float32)
    hu[body] = HU_SOFT
    hu[fat] = HU_FAT
    _draw_bones(rng, hu, y, x, body_ry, body_rx)
    hu = np.where(lung, HU_LUNG + 45.0 * (y + 1) / 2 + 12.0 * texture, hu)
    hu[trachea] = HU_AIR + 40
    hu[vessels] = HU_SOFT
    ggo_hu = np.clip(-520 + 70 * texture, HU_GGO_RANGE[0] + 40, HU_GGO_RANGE[1] - 40)
    cons_hu = np.clip(-30 + 25 * texture, HU_CONSOLIDATION_RANGE[0] + 25, HU_CONSOLIDATION_RANGE[1] - 15)
    hu = np.where(lesion, np.where(consolidation, cons_hu, ggo_hu), hu)

    # In-plane blur (the scanner's point-spread) and correlated quantum noise.
    hu = ndi.gaussian_filter(hu, sigma=(0.6, 0.6, 0))
    noise = ndi.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), sigma=(0.7, 0.7, 0))
    hu += noise * (14.0 / noise.std())
    label = np.where(lesion, np.where(consolidation, 2, 1), 0).astype(np.uint8)
    return SubjectVolumes(np.clip(np.round(hu), -1024, 3071).astype(np.int16), label, lung.astype(np.uint8))


def _lungs(rng, y, x, height, body_ry, body_rx):
    """Two lungs with wavy outlines whose area peaks mid-height; the left one has a heart notch."""
    theta = np.arctan2(y, x)
    profile = 0.55 + 0.45 * np.sin(np.pi * (0.12 + 0.8 * (1 - height)))
    lungs = np.zeros(np.broadcast_shapes(y.shape, height.shape), bool)
    hilum_distance = np.full(lungs.shape, np.inf, np.float32)
    for side in (-1, 1):
        cx, cy = side * 0.45 * body_rx / 0.86, 0.0
        ry, rx = 0.78 * body_ry * profile, 0.37 * body_rx * profile ** 0.5
        wave = sum(rng.uniform(0, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        r = np.hypot((y - cy) / ry, (x - cx) / rx)
        lungs |= r < 1 + wave
        hilum_distance = np.minimum(hilum_distance, np.hypot(y - 0.05, x - side * 0.2).astype(np.float32))
    heart = (np.hypot((y + 0.05) / 0.34, (x - 0.1) / 0.3) < 1) & (height < 0.55)
    return lungs & ~heart, hilum_distance


def _smooth_field(rng, shape, sigma_mm, pixel_mm, slice_mm) -> np.ndarray:
    """Gaussian random field with unit standard deviation and correlation length ``sigma_mm``."""
    sigma = (sigma_mm / pixel_mm, sigma_mm / pixel_mm, sigma_mm / slice_mm)
    field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return (field - field.mean()) / field.std()


def _lesions(lung, field, core_field, y, pixel_mm, lesion_fraction):
    """Lesion = top ``lesion_fraction`` of the field in the lungs, favouring the periphery and the back."""
    depth_mm = np.stack([ndi.distance_transform_edt(lung[..., k]) for k in range(lung.shape[2])], -1) * pixel_mm
    score = field + 0.8 * np.exp(-depth_mm / 20.0) + 0.4 * y
    min_pixels = MIN_LESION_AREA_MM2 / pixel_mm ** 2
    lesion = _without_specks(_top_fraction(score, lung, lesion_fraction), score, lung, min_pixels)
    # Consolidation: the densest cores of the lesions; its share grows with the burden.
    share = float(np.clip(0.1 + 0.8 * lesion_fraction, 0.1, 0.45))
    core_score = core_field + score
    return lesion, _without_specks(_top_fraction(core_score, lesion, share), core_score, lesion, min_pixels / 2)


def _top_fraction(score: np.ndarray, region: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of ``region`` voxels with the highest score (exact count, ties aside)."""
    return _top_count(score, region, int(round(fraction * region.sum())))


def _top_count(score: np.ndarray, region: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` voxels of ``region`` with the highest score (all of them if fewer; ties aside)."""
    values = score[region]
    count = min(count, values.size)
    selected = np.zeros_like(region)
    if count:
        selected[region] = values >= np.partition(values, values.size - count)[values.size - count]
    return selected


def _without_specks(selected: np.ndarray, score: np.ndarray, region: np.ndarray, min_pixels: float) -> np.ndarray:
    """``selected`` without in-plane components under ``min_pixels``, the same voxel count kept by growing
    the remaining components into their highest-scoring neighbours of ``region``.

    A thresholded field is speckled where its peaks barely cross the threshold; those specks are neither
    realistic GGO patches (radiologists label patches, not dots) nor learnable at a stride-8 output.
    """
    kept = np.zeros_like(selected)
    for k in range(selected.shape[2]):
        components, _ = ndi.label(selected[..., k])
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        kept[..., k] = sizes[components] >= min_pixels
    if not kept.any():
        return selected
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = ndi.generate_binary_structure(2, 1)
    target = int(selected.sum())
    while kept.sum() < target:
        ring = ndi.binary_dilation(kept, in_plane) & region & ~kept
        if not ring.any():
            break
        kept |= _top_count(score, ring, target - int(kept.sum()))
    return kept


def _vessels(field_a, field_b, hilum_distance):
    """Thin tubes (a level set of one field) and dots (where two level sets cross), thinner peripherally."""
    width = 0.05 * np.clip(1.2 - hilum_distance, 0.3, 1.0)
    return (np.abs(field_a) < width) | ((np.abs(field_a) < 2.5 * width) & (np.abs(field_b) < 2.5 * width))


def _draw_bones(rng, hu, y, x, body_ry, body_rx):
    """Vertebra, sternum and ribs: cortical rim around cancellous bone."""
    bones = [(0.43 * body_ry / 0.62, 0.0, 0.13, 0.11), (-0.9 * body_ry, 0.0, 0.05, 0.08)]
    for angle in rng.uniform(-0.08, 0.08) + np.linspace(0.35, 2.75, 7):
        for side in (-1, 1):
            bones.append((-0.92 * body_ry * np.cos(angle) + 0.04, side * 0.92 * body_rx * np.sin(angle), 0.035, 0.035))
    for cy, cx, ry, rx in bones:
        r = np.hypot((y - cy) / ry, (x - cx) / rx)[..., 0]
        hu[r < 1] = HU_CORTICAL
        hu[r < 0.7] = HU_CANCELLOUS


# ---------------------------------------------------------------------------------------------
# Cohort on disk


def make_demo_cohort(out_dir: str | Path, n_subjects: int = 12, seed: int = 0, size: int = 128,
                     slices_per_subject: int = 8, *, overwrite: bool = False,
                     params: StructuralParams | None = None, indirect: bool = True, chest_crops: bool = False) -> Path:
    """Write the demo cohort to ``out_dir`` (atomically) and return it.

    ``out_dir/volumes/<subject>/{ct,label,lung}.nii.gz``, ``out_dir/semiseg`` (COVID-SemiSeg layout, split
    by subject), ``out_dir/unlabeled`` (+ ``manifest.csv``), ``out_dir/clinical.csv``, ``out_dir/truth.json``.
    Same arguments give byte-identical files.
    """
    if n_subjects < 4:
        raise InputError(f"n_subjects must be at least 4 (train, test, unlabeled COVID, NonCOVID), got {n_subjects}")
    if size < 32:
        raise InputError(f"size must be at least 32 pixels, got {size}")
    if slices_per_subject < 1:
        raise InputError(f"slices_per_subject must be at least 1, got {slices_per_subject}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError("already exists; refusing to overwrite it (choose a new folder)", out_dir)
    params = _effective_params(params, indirect)
    clinical_seed, role_seed, images_seed = np.random.SeedSequence(seed).spawn(3)
    clinical = _draw_subjects(np.random.default_rng(clinical_seed), n_subjects, params)
    roles = _assign_roles(np.random.default_rng(role_seed), n_subjects)
    noncovid = roles == "noncovid"
    clinical.loc[noncovid, ["covid_label", "morbidity_outcome"]] = ["NonCOVID", "Control"]
    clinical.loc[noncovid, ["severity_code", "severe_or_worse", "lesion_fraction"]] = 0
    clinical.loc[noncovid, "lesion_burden_logit"] = np.nan
    clinical.insert(2, "split", np.where(np.isin(roles, ["train", "test"]), roles, "unlabeled"))

    pixel_mm, slice_mm = FOV_MM / size, LUNG_LENGTH_MM / slices_per_subject
    subject_seeds = images_seed.spawn(n_subjects)
    with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        semiseg = _SemisegWriter(tmp / "semiseg", chest_crops)
        unlabeled_rows, realised = [], []
        for row, role, subject_seed in zip(clinical.itertuples(), roles, subject_seeds):
            volumes = render_subject(np.random.default_rng(subject_seed), size, slices_per_subject,
                                     row.lesion_fraction)
            _write_volumes(tmp / "volumes" / row.subject_id, volumes, pixel_mm, slice_mm)
            realised.append(_realised_burden(volumes, pixel_mm, slice_mm))
            if role in ("train", "test"):
                semiseg.add_subject(row.subject_id, role, volumes)
            else:
                unlabeled_rows += _write_unlabeled(tmp / "unlabeled", row.subject_id, row.covid_label, volumes)
        semiseg.finish()
        fileio.write_csv(tmp / "unlabeled" / "manifest.csv", unlabeled_rows)
        clinical = pd.concat([clinical, pd.DataFrame(realised)], axis=1)
        fileio.write_text(tmp / "clinical.csv", clinical.to_csv(index=False, float_format="%.6g"))
        truth = truth_for(params)
        truth["cohort"] = {
            "seed": seed, "n_subjects": n_subjects, "size": size, "slices_per_subject": slices_per_subject,
            "spacing_mm": [pixel_mm, pixel_mm, slice_mm],
            "subjects_by_split": {s: clinical.subject_id[clinical.split == s].tolist()
                                  for s in ("train", "test", "unlabeled")},
            "hu_ranges": {"GGO": HU_GGO_RANGE, "consolidation": HU_CONSOLIDATION_RANGE},
        }
        fileio.write_json(tmp / "truth.json", truth)
    return out_dir


def _assign_roles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Shuffle subjects into train / test / unlabeled COVID / NonCOVID, whole subjects only."""
    n_noncovid = n_unlabeled = max(1, round(n / 6))
    n_test = max(1, round((n - n_noncovid - n_unlabeled) * 0.4))
    n_train = n - n_noncovid - n_unlabeled - n_test
    roles = np.repeat(["train", "test", "unlabeled", "noncovid"], [n_train, n_test, n_unlabeled, n_noncovid])
    return rng.permutation(roles)


def _realised_burden(volumes: SubjectVolumes, pixel_mm: float, slice_mm: float) -> dict:
    lesion = volumes.label > 0
    voxel_ml = pixel_mm * pixel_mm * slice_mm / 1000.0
    return {
        "realised_lesion_fraction": lesion.sum() / max(1, int(volumes.lung.sum())),
        "n_lesions": ndi.label(lesion)[1],
        "lesion_volume_ml": lesion.sum() * voxel_ml,
        "consolidation_volume_ml": (volumes.label == 2).sum() * voxel_ml,
    }


def _write_volumes(folder: Path, volumes: SubjectVolumes, pixel_mm: float, slice_mm: float) -> None:
    # Array axes: rows (anterior -> posterior), cols (patient right -> left), slices (inferior -> superior);
    # data[:, :, k] is the slice as displayed, like the MedSeg volumes.
    affine = np.array([[0, -pixel_mm, 0, 0], [-pixel_mm, 0, 0, 0], [0, 0, slice_mm, 0], [0, 0, 0, 1]], float)
    affine[:3, 3] = -affine[:3, :3] @ (np.array(volumes.hu.shape) - 1) / 2
    folder.mkdir(parents=True)
    for name, data in (("ct", volumes.hu), ("label", volumes.label), ("lung", volumes.lung)):
        image = nib.Nifti1Image(data, affine)
        image.header.set_xyzt_units("mm")
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, folder / f"{name}.nii.gz")


def lung_window_u8(hu: np.ndarray) -> np.ndarray:
    """HU -> 8-bit display in the readers' lung window (the 8-bit slices of COVID-SemiSeg are windowed)."""
    return np.round(to_unit_range(hu, "hu") * 255).astype(np.uint8)


#: Palette of the COVID-SemiSeg multi-class GT PNGs (PASCAL VOC colours: black, dark red, dark green).
_GT_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)


def lung_crop(lung: np.ndarray) -> tuple[slice, slice]:
    """The in-plane box of a slice's lungs plus :data:`ssinfnet.data.volumes.CROP_MARGIN`: what segment
    crops a slice to before predicting it (``chest_crops``)."""
    rows, cols = np.flatnonzero(lung.any(axis=1)), np.flatnonzero(lung.any(axis=0))
    return tuple(slice(max(0, int(ix[0]) - m), min(size, int(ix[-1]) + 1 + m))
                 for ix, size, m in ((rows, lung.shape[0], crop_margin(lung.shape[0])),
                                     (cols, lung.shape[1], crop_margin(lung.shape[1]))))


class _SemisegWriter:
    """Writes slices in the COVID-SemiSeg layout, numbered 0.. across train and test like the real set."""

    # Slices without lesions kept per slice with lesions (the real set is nearly all lesion slices).
    EMPTY_SLICE_RATE = 0.1

    def __init__(self, root: Path, chest_crops: bool = False):
        self.root, self.chest_crops = root, chest_crops
        self.next_id = 0
        self.index_rows: list[dict] = []
        self.empty_budget = {"train": 0.0, "test": 0.0}

    def add_subject(self, subject_id: str, split: str, volumes: SubjectVolumes) -> None:
        for k in range(volumes.hu.shape[2]):
            label = volumes.label[:, :, k]
            if not label.any():
                if self.empty_budget[split] < 1:
                    continue
                self.empty_budget[split] -= 1
            else:
                self.empty_budget[split] += self.EMPTY_SLICE_RATE
            image = lung_window_u8(volumes.hu[:, :, k])
            if self.chest_crops:  # like the real set's chest crops, at the scale segment predicts them
                box = lung_crop(volumes.lung[:, :, k] > 0)
                image, label = image[box], label[box]
            # Stored turned like the real set, so read_semiseg's turn gives the radiological view back.
            turn = -SEMISEG_TO_RADIOLOGICAL
            self._write_slice(split, np.ascontiguousarray(np.rot90(image, turn)),
                              np.ascontiguousarray(np.rot90(label, turn)))
            self.index_rows.append({"semiseg_id": self.next_id, "subject_id": subject_id, "slice_index": k,
                                    "split": "TrainingSet" if split == "train" else "TestingSet"})
            self.next_id += 1

    def _write_slice(self, split: str, image: np.ndarray, label: np.ndarray) -> None:
        stem = str(self.next_id)
        infection = Image.fromarray(((label > 0) * 255).astype(np.uint8))
        gt = Image.fromarray(label)
        gt.putpalette(_GT_PALETTE)
        if split == "train":
            multi = self.root / "TrainingSet" / "MultiClassInfection-Train"
            single = self.root / "TrainingSet" / "LungInfection-Train" / "Doctor-label"
            edge = ndi.binary_dilation(label > 0) ^ ndi.binary_erosion(label > 0)
            outputs = {multi / "Imgs": image, multi / "GT": gt, multi / "Prior": infection,
                       single / "Imgs": image, single / "GT": infection,
                       single / "Edge": Image.fromarray((edge * 255).astype(np.uint8))}
        else:
            multi = self.root / "TestingSet" / "MultiClassInfection-Test"
            single = self.root / "TestingSet" / "LungInfection-Test"
            outputs = {multi / "Imgs": image, multi / "GT": gt,
                       multi / "GT-1": Image.fromarray(label == 1).convert("1"),
                       multi / "GT-2": Image.fromarray(label == 2).convert("1"),
                       single / "Imgs": image, single / "GT": infection}
        for folder, content in outputs.items():
            folder.mkdir(parents=True, exist_ok=True)
            if folder.name == "Imgs":
                Image.fromarray(content).save(folder / f"{stem}.jpg", quality=95)
            else:
                content.save(folder / f"{stem}.png")

    def finish(self) -> None:
        """Write the slice index (which subject and slice each numbered file came from)."""
        fileio.write_csv(self.root / "slice_index.csv", self.index_rows,
                         ["semiseg_id", "subject_id", "slice_index", "split"])


def _write_unlabeled(folder: Path, subject_id: str, covid_label: str, volumes: SubjectVolumes) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(volumes.hu.shape[2]):
        name = f"{subject_id}_{k:03d}.png"
        Image.fromarray(lung_window_u8(volumes.hu[:, :, k])).save(folder / name)
        rows.append({"file": name, "covid_label": covid_label, "original_name": f"{subject_id}/ct.nii.gz#{k}",
                     "width": volumes.hu.shape[1], "height": volumes.hu.shape[0]})
    return rows
