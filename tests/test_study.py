"""`ssinfnet study` (issue 25): protocol parsing, the dry-run listing, the decision rule, and a tiny study
end to end (interrupted, resumed, the winner exported, the test slices scored once), with per-fold
pseudo-labels from a model that never saw the fold's validation slices."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.errors import InputError
from ssinfnet.workflows import reproduce, study
from ssinfnet.workflows.protocol import Rule, endpoint_scores, load_protocol

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.size=32", "single.epochs=1", "single.batch_size=4", "model={name: unet, width: 4}",
        "multi_model={name: multi_unet, width: 4}", "coach.width=4", "pretrain.block=8"]


def protocol_dict(**changes):
    protocol = {
        "name": "tiny",
        "data": {"root": "data", "labeled": "cohort/semiseg", "pool": "cohort/unlabeled",
                 "test": {"data": "cohort/semiseg", "split": "test"}},
        "folds": 2, "seeds": [0],
        "endpoint": {"metric": "oof_infnet_dice"},
        "rule": {"maximise": "endpoint", "tie_margin": 1.0, "tie_break": "cost"},
        "checks": [{"name": "vol", "data": "cohort/volumes/demo000/ct.nii.gz", "measure": "lesion_percent_of_lung",
                    "max": 100}],
        "recipes": [
            {"name": "plain", "stage": "single", "preset": "demo", "set": TINY, "negatives": False, "cost": 0},
            {"name": "semi", "stage": "single", "preset": "demo", "set": TINY, "negatives": False, "cost": 1,
             "pseudo": {"labeller": "plain", "count": 4}},
        ],
    }
    protocol.update(changes)
    return protocol


def write(path: Path, protocol: dict) -> Path:
    path.write_text(yaml.safe_dump(protocol))
    return path


WARM2 = {"epochs_checkpoints": [2], "set": ["pretrain.warmup_epochs=1"]}


@pytest.mark.parametrize("change, key", [
    ({"folds": 1}, "protocol folds"),
    ({"seeds": []}, "protocol seeds"),
    ({"export": {"folds": [2]}}, "protocol export.folds"),
    ({"endpoint": {"metric": "auc"}}, "protocol endpoint.metric"),
    ({"rule": {"maximise": "endpoint", "tie_margin": -1}}, "protocol rule.tie_margin"),
    ({"rulez": {}}, "protocol rulez: unknown key"),
    ({"checks": [{"name": "x", "data": "d", "measure": "lesion_ml"}]}, "protocol checks[0]: give exactly one"),
    ({"recipes": [{"name": "a", "stage": "triple", "preset": "demo"}]}, "protocol recipes[0].stage"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo", "set": ["single.lr=-1"]}]},
     "protocol recipes[0]: a: config single.lr"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo", "pseudo": {"labeller": "nobody"}}]},
     "protocol recipes[0].pseudo.labeller"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo", "pretrain": {"epochs_checkpoints": [2, 2]}}]},
     "protocol recipes[0].pretrain.epochs_checkpoints"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo", "pretrain": WARM2},
                  {"name": "b", "stage": "single", "preset": "demo",
                   "pretrain": {"from": "a", "epochs_checkpoints": [8]}}]},
     "protocol recipes[1].pretrain.from: 'a' keeps epochs [2], not [8]"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo"},
                  {"name": "b", "stage": "single", "preset": "demo",
                   "pretrain": {"from": "a", "epochs_checkpoints": [2]}}]},
     "protocol recipes[1].pretrain.from: 'a' is not a single-stage recipe with a pretraining run"),
    ({"recipes": [{"name": "a", "stage": "single", "preset": "demo", "pretrain": WARM2},
                  {"name": "b", "stage": "single", "preset": "demo",
                   "pretrain": {"from": "a", "epochs_checkpoints": [2], "set": ["pretrain.block=8"]}}]},
     "protocol recipes[1].pretrain.set: not with 'from'"),
])
def test_a_bad_protocol_is_one_line_naming_the_key_and_the_file_before_any_run(tmp_path, capsys, change, key):
    path = write(tmp_path / "bad.yaml", protocol_dict(**change))
    with pytest.raises(InputError, match=key.replace("[", r"\[").replace("]", r"\]")) as err:
        load_protocol(path)
    assert str(err.value.path) == str(path)
    assert main(["study", str(path), "--work", str(tmp_path / "work")]) == 2
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1 and "bad.yaml" in line and key.split(":")[0] in line
    assert not (tmp_path / "work").exists()


def test_the_rule_takes_the_best_passing_candidate_and_gives_ties_to_the_cheaper():
    rows = [{"name": "a", "endpoint": 0.70, "cost": 0, "passes": True},
            {"name": "b", "endpoint": 0.705, "cost": 8, "passes": True},
            {"name": "c", "endpoint": 0.80, "cost": 0, "passes": False}]
    assert Rule(0.01, "cost").choose(rows)[0] == "a"  # b is within 0.01 and costs more; c fails a check
    assert Rule(0.001, "cost").choose(rows)[0] == "b"
    assert Rule(0.01).choose([{**r, "passes": False} for r in rows]) == (None, "no candidate passes every check")


def test_dry_run_lists_every_run_of_a_tiny_protocol(tmp_path, capsys):
    protocol = protocol_dict(recipes=[
        {"name": "ss", "stage": "single", "preset": "demo", "set": TINY,
         "pretrain": {"epochs_checkpoints": [0, 2], "set": ["pretrain.warmup_epochs=1"]}},
        {"name": "m", "stage": "multi", "preset": "demo", "set": TINY}], seeds=[0, 1])
    path = write(tmp_path / "p.yaml", protocol)
    assert main(["study", str(path), "--work", str(tmp_path / "w"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("] ", 1)[1].split(": ", 1)[0] for line in lines[:-1]]
    trains = sorted(n for n in names if n.startswith(("train ", "pretrain ")))
    assert trains == sorted([f"pretrain ss seed {s}" for s in (0, 1)]
                            + [f"train {c} seed {s} fold {k}" for c in ("ss-pre0", "ss-pre2", "m")
                               for s in (0, 1) for k in (0, 1)])
    assert sum(n.startswith("crossval ") for n in names) == 6 and sum(n.startswith("export ") for n in names) == 3
    assert sum(n.startswith("check vol ") for n in names) == 3
    pretrain = next(line for line in lines if "pretrain ss seed 1" in line)
    assert "'pretrain.keep_epochs=[0, 2]'" in pretrain and "pretrain.epochs=2" in pretrain and "seed=1" in pretrain
    fine_tune = next(line for line in lines if "train ss-pre2 seed 1 fold 0" in line)
    assert f"--init {tmp_path}/w/pretrain/ss-s1/epochs/epoch-0002" in fine_tune and "data.fold=0" in fine_tune
    assert "--prior-from '<single winner>'" in next(line for line in lines if "train m seed 0 fold 1" in line)
    assert lines[-2].startswith("[test, scored once]") and "--split test" in lines[-2]
    assert lines[-1] == f"[study] {len(lines) - 1} steps, 14 training and pretraining runs (dry run: nothing was run)"
    assert not (tmp_path / "w").exists()


def test_a_recipe_with_pretrain_from_fine_tunes_from_the_other_recipes_run_without_one_of_its_own(tmp_path, capsys):
    protocol = protocol_dict(recipes=[
        {"name": "ss", "stage": "single", "preset": "demo", "set": TINY, "pretrain": {"epochs_checkpoints": [2, 8]}},
        {"name": "fl", "stage": "single", "preset": "demo", "set": [*TINY, "single.focal={alpha: 0.25, gamma: 2.0}"],
         "pretrain": {"from": "ss", "epochs_checkpoints": [8]}}])
    path = write(tmp_path / "p.yaml", protocol)
    assert main(["study", str(path), "--work", str(tmp_path / "w"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pretraining = [line.split("] ", 1)[1].split(": ", 1)[0] for line in lines if "pretrain --network" in line]
    assert pretraining == ["pretrain ss seed 0"]
    fine_tune = next(line for line in lines if "train fl-pre8 seed 0 fold 1" in line)
    assert f"--init {tmp_path}/w/pretrain/ss-s0/epochs/epoch-0008" in fine_tune and "single.focal" in fine_tune


def test_the_committed_self_supervision_protocol_lists_every_run(capsys, tmp_path):
    assert main(["study", str(REPO / "studies" / "self-supervision.yaml"), "--work", str(tmp_path / "w"),
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("] ", 1)[1].split(": ", 1)[0] for line in lines[:-1]]
    candidates = {"sinfnet", "product", "ssinfnet-fl-la-pre32", "multi-sinfnet", "multi-ssinfnet-fl-la-pre32",
                  *(f"{r}-pre{e}" for r in ("ssinfnet", "multi-ssinfnet") for e in (0, 2, 8, 32))}
    expected = {f"train {c} seed {s} fold {k}" for c in candidates for s in (0, 1, 2) for k in range(5)}
    assert {n for n in names if n.startswith("train ")} == expected and len(expected) == 195
    assert {n for n in names if n.startswith("pretrain ")} == {  # the focal + Lookahead arms share these
        f"pretrain {r} seed {s}" for r in ("ssinfnet", "multi-ssinfnet") for s in (0, 1, 2)}
    assert {n for n in names if n.startswith("pseudo-label ")} == {f"pseudo-label product seed {s} fold {k}"
                                                                  for s in (0, 1, 2) for k in range(5)}
    assert sum(n.startswith("crossval ") for n in names) == 13 * 3 and sum(n.startswith("check ") for n in names) == 39
    assert lines[-1].startswith(f"[study] {len(lines) - 1} steps, 201 training and pretraining runs")


def test_the_endpoint_is_read_in_the_view_crossval_chose_and_the_multi_stage_falls_back_to_its_score():
    views = {"plain": {"per_image": [0.1], "infnet_dice": 0.2, "infnet_per_image": [0.2]},
             "flip": {"per_image": [0.3], "infnet_dice": 0.4, "infnet_per_image": [0.4]}}
    single = {"stage": "single", "flip_tta": True, "score": 0.3, **views}
    assert endpoint_scores(single, "oof_infnet_dice") == (0.4, [0.4])
    assert endpoint_scores({**single, "flip_tta": False}, "oof_infnet_dice") == (0.2, [0.2])
    assert endpoint_scores(single, "oof_dice") == (0.3, [0.3])
    assert endpoint_scores({**single, "stage": "multi"}, "oof_infnet_dice") == (0.3, [0.3])


def test_the_committed_cpu_protocol_lists_its_runs(capsys, tmp_path):
    assert main(["study", str(REPO / "studies" / "self-supervision-cpu.yaml"), "--work", str(tmp_path / "w"),
                 "--dry-run"]) == 0
    names = [line.split("] ", 1)[1].split(": ", 1)[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    candidates = ["sinfnet", "multi-sinfnet", *(f"ssinfnet-pre{e}" for e in (0, 2, 8, 32))]
    assert {n for n in names if n.startswith("train ")} == {f"train {c} seed 0 fold {k}" for c in candidates
                                                            for k in range(5)}
    assert [n for n in names if n.startswith("pretrain ")] == ["pretrain ssinfnet seed 0"]


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda path: path.name)
def test_every_committed_protocol_still_lists_its_runs_with_one_pretraining_run_per_seed(path, capsys, tmp_path):
    protocol = load_protocol(path)
    assert main(["study", str(path), "--work", str(tmp_path / "w"), "--dry-run"]) == 0
    names = [line.split("] ", 1)[1].split(": ", 1)[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    own = [r.name for r in protocol.recipes if r.pretrain is not None and r.pretrain.source is None]
    assert sorted(n for n in names if n.startswith("pretrain ")) == sorted(
        f"pretrain {r} seed {s}" for r in own for s in protocol.seeds)


def test_a_candidate_pipeline_is_made_of_the_export_folds(tmp_path):
    everything = load_protocol(write(tmp_path / "all.yaml", protocol_dict()))
    fold_one = load_protocol(write(tmp_path / "one.yaml", protocol_dict(export={"folds": [1]})))
    for protocol, runs in ((everything, ["s0-f0", "s0-f1"]), (fold_one, ["s0-f1"])):
        plan = study.Plan(protocol, tmp_path / "w")
        argv = [str(a) for a in plan.export_step(protocol.candidate("plain"), None).argv]
        members = argv[argv.index("--single") + 1:argv.index("--out")]
        assert members == [str(tmp_path / "w" / "runs" / "plain" / run) for run in runs]


def test_a_tiny_study_resumes_chooses_by_the_rule_exports_and_scores_the_test_slices_once(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_demo_cohort(root / "cohort", n_subjects=4, size=48, slices_per_subject=5)
    path = write(tmp_path / "tiny.yaml", protocol_dict())
    work = tmp_path / "work"
    args = ["study", str(path), "--work", str(work), "--data-root", str(root), "--jobs", "2"]
    real, executed = study.execute, []

    def in_process(argv, env=None):  # each step's verb in this process: no interpreter start per step
        code = main([str(a) for a in argv[3:]])
        if code:
            raise subprocess.CalledProcessError(code, argv)

    monkeypatch.setattr(reproduce, "run_verb", in_process)

    def interrupted(step, env):
        if len(executed) == 3:
            raise KeyboardInterrupt
        real(step, env)
        executed.append(step.name)

    monkeypatch.setattr(study, "execute", interrupted)
    assert main([*args[:-2]]) == 130  # Ctrl-C, one job at a time: the first three steps finish, the fourth is cut
    finished = list(executed)
    assert finished == ["train plain seed 0 fold 0", "train plain seed 0 fold 1", "labeller plain seed 0 fold 0"]

    scored = []

    def score_once(protocol, pipeline, work_dir):
        result = json.loads((work_dir / "study.json").read_text())
        scored.append((result["stages"]["single"]["chosen"], (pipeline / "pipeline.json").is_file()))
        return {"purpose": f"study {protocol.name}: winner, scored once"}

    again = []
    monkeypatch.setattr(study, "execute", lambda step, env: (again.append(step.name), real(step, env)))
    monkeypatch.setattr(study, "score_test_once", score_once)
    assert main(args) == 0
    assert not set(finished) & set(again)  # finished runs are not trained again
    assert scored == [("plain", True)]  # tie within 1.0: the cheaper recipe; scored once, after the export
    result = json.loads((work / "study.json").read_text())
    rows = {row["name"]: row for row in result["stages"]["single"]["candidates"]}
    assert set(rows) == {"plain", "semi"} and result["winner"]["name"] == "plain"
    for row in rows.values():
        assert row["ci_low"] <= row["endpoint"] <= row["ci_high"] and row["passes"]
        assert 0 <= row["checks"]["vol"] <= 100
    # the endpoint is the Inf-Net-protocol Dice; differences to the first candidate are paired by slice
    cvs = {name: json.loads((work / "cv" / f"{name}-s0.json").read_text()) for name in rows}
    for name, cv in cvs.items():
        assert rows[name]["endpoint"] == cv["flip" if cv["flip_tta"] else "plain"]["infnet_dice"]
        assert rows[name]["oof_dice"] == cv["score"] and rows[name]["reference"] == "plain"
    by_id = {name: dict(zip([i["id"] for i in cv["images"]], cv["flip" if cv["flip_tta"] else "plain"]["infnet_per_image"]))
             for name, cv in cvs.items()}
    assert rows["plain"]["vs_reference"] == 0
    assert rows["semi"]["vs_reference"] == pytest.approx(
        np.mean([by_id["semi"][i] - by_id["plain"][i] for i in by_id["plain"]]))
    assert (work / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src/ssinfnet/weights/default" in result["winner"]["install"]
    assert (work / "winner" / "pipeline.json").is_file() and (work / "out-of-fold.csv").read_text().count("\n") == 3

    # Issue 25 item 4: fold k's pseudo-labels come from plain's fold-k model, which validated on (so never
    # trained on) exactly the slices that semi's fold-k run validates on.
    for fold in (0, 1):
        labeller = json.loads((work / "runs" / "plain" / f"s0-f{fold}" / "run.json").read_text())
        student = json.loads((work / "runs" / "semi" / f"s0-f{fold}" / "run.json").read_text())
        assert labeller["data"]["val"] == student["data"]["val"] != labeller["data"]["train"]
        pseudo = json.loads((work / "pseudo" / "semi" / f"s0-f{fold}" / "pseudolabels.json").read_text())
        assert pseudo["model"] == f"s0-f{fold}" and student["inputs"]["pseudo"] == [str(work / "pseudo" / "semi" / f"s0-f{fold}")]
        assert json.loads((work / "labellers" / "plain" / f"s0-f{fold}" / "pipeline.json").read_text())["meta"]["runs"]

    # A third invocation runs nothing and scores nothing again.
    again.clear()
    assert main(args) == 0 and again == [] and len(scored) == 1


def test_a_tiny_pretraining_study_fine_tunes_from_kept_epochs_and_states_them(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_demo_cohort(root / "cohort", n_subjects=4, size=48, slices_per_subject=5)
    protocol = protocol_dict(checks=[], recipes=[
        {"name": "plain", "stage": "single", "preset": "demo", "set": TINY, "negatives": False},
        {"name": "ss", "stage": "single", "preset": "demo", "set": TINY, "negatives": False,
         "pretrain": {"epochs_checkpoints": [0, 2], "set": ["pretrain.warmup_epochs=1", "data.unlabeled_limit=8"]}}])
    work = tmp_path / "work"

    def in_process(argv, env=None):
        code = main([str(a) for a in argv[3:]])
        if code:
            raise subprocess.CalledProcessError(code, argv)

    monkeypatch.setattr(reproduce, "run_verb", in_process)
    monkeypatch.setattr(study, "score_test_once", lambda protocol, pipeline, work_dir: {"purpose": "not scored"})
    assert main(["study", str(write(tmp_path / "p.yaml", protocol)), "--work", str(work),
                 "--data-root", str(root)]) == 0
    rows = json.loads((work / "study.json").read_text())["stages"]["single"]["candidates"]
    assert [(row["name"], row["pretrain_epochs"]) for row in rows] == [("plain", None), ("ss-pre0", 0), ("ss-pre2", 2)]
    card = (work / "pipelines" / "ss-pre2" / "MODEL_CARD.md").read_text()
    assert "pretraining on 8 unlabeled CT slices" in card and "2 epochs, kept from a 2-epoch run." in card
    assert (work / "budget.png").is_file()
