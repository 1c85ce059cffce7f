"""Clinical tables: iCTCF parsing checked against counts taken independently from the raw CSV."""

import csv
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ssinfnet.analysis.clinical import parse_mapping, parsing_rules, read_clinical, read_ictcf, read_table
from ssinfnet.errors import InputError

ICTCF_HEADER = ("ID,Hospital,Age,Gender,Body temperature,Underlying diseases,SARS-CoV-2 nucleic acids,"
                "Computed tomography (CT),Morbidity outcome,Mortality outcome,LY,CRP\n")


def write_ictcf(path, rows):
    path.write_text(ICTCF_HEADER + "".join(r + "\n" for r in rows))
    return path


def test_real_ictcf_severity_counts_match_the_raw_file(shared_data):
    path = shared_data / "ictcf" / "All_Patients.csv"
    with open(path, newline="") as fh:
        raw = list(csv.DictReader(fh))
    morbidity = Counter(r["Morbidity outcome"] for r in raw)
    expected = {
        0: morbidity["Control"] + morbidity["Mild"] + morbidity["Regular"],
        1: morbidity["Severe"],
        2: morbidity["Critically ill"],
    }
    table = read_ictcf(path)
    frame = table.frame
    assert len(frame) == len(raw)
    assert {int(k): v for k, v in frame["severity"].value_counts().items()} == expected
    assert int(frame["severity"].isna().sum()) == len(raw) - sum(expected.values())
    assert int(frame["severe"].sum()) == expected[1] + expected[2]
    assert table.report["severity_missing"]["Suspected"]["rows"] == morbidity["Suspected"]
    no_disease = sum(r["Underlying diseases"].strip().lower() == "no" for r in raw)
    assert int((frame["underlying_any"] == 0).sum()) == no_disease
    hypertension = sum("hypertens" in r["Underlying diseases"].lower() for r in raw)
    assert int(frame["hypertension"].sum()) == hypertension
    crp_present = sum(r["CRP"].strip() not in ("", "N/A") for r in raw)
    assert int(frame["CRP"].notna().sum()) == crp_present
    assert frame["age"].between(0, 120).all()


def test_ictcf_rules_on_hand_made_rows(tmp_path):
    path = write_ictcf(tmp_path / "t.csv", [
        'P1,Union,70,Male,37.0,"Hypertension, Diabetes",Positive,Positive,Severe,Cured,0.8,30',
        "P2,Union,40,Female,N/A,No,Negative,N/A,Control (Community-acquired pneumonia),Unknown,N/A,",
        "P3,Liyuan,55,Female,36.8,HypertensionCoronary disease,Positive,Positive,Critically ill,Deceased,0.5,80",
        "P4,Liyuan,30,Male,36.5,N/A,Positive,Negative,Suspected,Unknown,1.5,2",
        "P5,Liyuan,60,Male,36.5,Acute myeloid leukemia,Positive,Positive,Mild,Cured,1.1,5",
    ])
    frame = read_ictcf(path).frame
    assert list(frame["severity"].fillna(-1)) == [1, -1, 2, -1, 0]
    assert list(frame["severe"].fillna(-1)) == [1, -1, 1, -1, 0]
    assert list(frame["underlying_any"].fillna(-1)) == [1, 0, 1, -1, 1]
    assert list(frame["hypertension"].fillna(-1)) == [1, 0, 1, -1, 0]
    assert list(frame["cardiovascular"].fillna(-1)) == [0, 0, 1, -1, 0]  # no separator still parsed
    assert list(frame["cancer"].fillna(-1)) == [0, 0, 0, -1, 1]
    assert list(frame["deceased"].fillna(-1)) == [0, -1, 1, -1, 0]
    assert np.isnan(frame.loc[1, "temperature"]) and np.isnan(frame.loc[1, "LY"])
    with_cap = read_ictcf(path, include_cap_controls=True).frame
    assert with_cap.loc[1, "severity"] == 0


def test_unknown_morbidity_value_and_non_numeric_lab_are_input_errors(tmp_path):
    path = write_ictcf(tmp_path / "u.csv", ["P1,Union,70,Male,37.0,No,Positive,Positive,Moderate,Cured,0.8,30"])
    with pytest.raises(InputError, match="Moderate") as err:
        read_ictcf(path)
    assert str(path) in str(err.value)
    path = write_ictcf(tmp_path / "v.csv", ["P1,Union,70,Male,37.0,No,Positive,Positive,Severe,Cured,high,30"])
    with pytest.raises(InputError, match="'LY'"):
        read_ictcf(path)


def test_parsing_rules_name_every_category_and_code():
    text = "\n".join(parsing_rules())
    for needle in ("Critically ill = 2", "Suspected", "Community-acquired", "hypertension:", "cardiovascular:"):
        assert needle in text


def test_generic_table_with_mapping(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("Subject,Age (y),Outcome,Site\na,50,1,X\nb,NA,0,Y\nc,61,1,X\n")
    mapping_file = tmp_path / "map.yaml"
    mapping_file.write_text("patient_id: Subject\nage: Age (y)\n")
    mapping = parse_mapping(["severe=Outcome"], mapping_file)
    table = read_clinical(path, mapping)
    assert list(table.frame.columns) == ["patient_id", "age", "severe", "Site"]
    assert table.frame["age"].isna().sum() == 1 and table.frame["age"].dtype.kind == "f"
    assert not pd.api.types.is_numeric_dtype(table.frame["Site"])
    with pytest.raises(InputError, match="not in the table"):
        read_table(path, {"age": "Years"})
    with pytest.raises(InputError, match="name=Column"):
        parse_mapping(["age"])


def test_clinical_cli_writes_table_and_parsing_report(tmp_path):
    from ssinfnet.cli import main

    path = write_ictcf(tmp_path / "t.csv", [
        "P1,Union,70,Male,37.0,Diabetes,Positive,Positive,Severe,Cured,0.8,30",
        "P2,Union,40,Female,36.9,No,Positive,Positive,Regular,Cured,1.2,4",
        "P3,Union,50,Female,36.9,No,Positive,Positive,Suspected,Unknown,1.2,4",
    ])
    assert main(["clinical", str(path), "--out", str(tmp_path / "parsed.csv"), "--report", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "parsing.json").read_text())
    assert report["severity_counts"] == {"0": 1, "1": 1}
    assert report["severity_missing"]["Suspected"]["rows"] == 1
    assert "| Suspected | 1 | missing |" in (tmp_path / "rep" / "parsing.md").read_text()
    assert list(pd.read_csv(tmp_path / "parsed.csv")["diabetes"]) == [1, 0, 0]


def test_clinical_verb_refuses_existing_outputs_unless_overwrite(tmp_path, capsys):
    from ssinfnet.cli import main

    path = write_ictcf(tmp_path / "t.csv", ["P1,Union,70,Male,37.0,No,Positive,Positive,Severe,Cured,0.8,30"])
    report, out = tmp_path / "report", tmp_path / "parsed.csv"
    assert main(["clinical", str(path), "--report", str(report), "--out", str(out)]) == 0
    assert sorted(p.name for p in report.iterdir()) == ["parsing.json", "parsing.md"]
    (report / "parsing.md").write_text("edited")
    for args in (["--report", str(report)], ["--out", str(out)]):
        assert main(["clinical", str(path), *args]) == 2
        assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert (report / "parsing.md").read_text() == "edited"
    assert main(["clinical", str(path), "--report", str(report), "--out", str(out), "--overwrite"]) == 0
    assert "Severe" in (report / "parsing.md").read_text() and len(pd.read_csv(out)) == 1
