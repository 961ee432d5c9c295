"""Node-based features = CLI features; background runner = synchronous path; prediction/contribution tables;
saved session reloads voxel-exact with a complete audit record (slicer-core, headless).

References: the ``her2radiomics extract`` CLI run in a subprocess on files written from the same
phantom; a hand-computed logistic cascade (docs/method.md#stage-wise-her2-prediction: P(positive) = p1, P(low) = (1 - p1) p2,
P(zero) = (1 - p1)(1 - p2)); Slicer's own segmentation storage node for the reload.
"""

from __future__ import annotations

import csv
import getpass
import json
import math
import time

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli

from her2radiomics.errors import UserError
from HER2RadiomicsLib import mrml_bridge as mb
from HER2RadiomicsLib import runner, session
from HER2RadiomicsLib.logic import PanelLogic, table_rows

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

SMALL_PARAMS = """\
imageType:
  Original: {}
featureClass:
  shape: [VoxelVolume, Sphericity]
  firstorder: [Mean, Energy, Entropy, Skewness, 90Percentile]
  glcm: [Contrast, JointEntropy, Idm]
setting:
  binCount: 16
  label: 1
  minimumROIDimensions: 1
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A small phantom, its files on disk and a small parameter file."""
    from her2radiomics.phantom import make_phantom

    d = tmp_path_factory.mktemp("case")
    ph = make_phantom(seed=4, size=(128, 128, 48), spacing=(0.95, 0.95, 1.8), lesion_radius_mm=4.0)
    params = d / "small.yaml"
    params.write_text(SMALL_PARAMS, encoding="utf-8")
    return ph, params, d


def _workspace(ctx, ph):
    """Volume + segmentation with the phantom's lesion, air and pectoralis (as a user would have them)."""
    vol = mb.volume_node_from_image(ph.image, "DCE")
    logic = PanelLogic()
    seg = logic.setupSegmentation(vol)
    mb.set_segment_from_mask(seg, "lesion", ph.lesion)
    mb.set_segment_from_mask(seg, "air", ph.air)
    mb.set_segment_from_mask(seg, "pectoralis", ph.pectoralis)
    logic.generateShells(vol, seg, (1, 3, 5))
    return logic, vol, seg


def test_node_features_equal_cli_features(mrml_scene, case, tmp_path):
    ph, params, d = case
    logic, vol, seg = _workspace(mrml_scene, ph)
    node_values = logic.extractFeatures(vol, seg, params)
    assert logic.state.exclusion_states == {"air": "user", "pectoralis": "user"}

    # the CLI on files exported from the segments (what a researcher would run on the same case)
    for name in ("lesion", "air", "pectoralis"):
        sitk.WriteImage(mb.mask_from_segment(seg, name, vol), str(tmp_path / f"{name}.nrrd"))
    sitk.WriteImage(mb.image_from_volume_node(vol), str(tmp_path / "image.nrrd"))
    (tmp_path / "manifest.csv").write_text(
        "case_id,image,lesion,air,pectoralis\nc1,image.nrrd,lesion.nrrd,air.nrrd,pectoralis.nrrd\n", encoding="utf-8"
    )
    res = run_cli("extract", tmp_path / "manifest.csv", "-o", tmp_path / "features.csv", "--params", params,
                  "--distances", "1", "3", "5", "--jobs", "1")
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "features.csv", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    from her2radiomics.provenance import PROVENANCE_COLUMNS

    # parameter_file_hash, resample, her2radiomics_version are provenance, not features
    cli = {k: float(v) for k, v in row.items() if k not in ("case_id", "reader", *PROVENANCE_COLUMNS)}
    assert list(cli) == list(node_values)  # same columns, same order
    assert len(cli) == 4 * (2 + 5 + 3)
    for k, v in cli.items():
        assert node_values[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k

    # and the table node holds one row per feature with the expected columns
    node = logic.featuresTable()
    rows = table_rows(node)
    assert [node.GetTable().GetColumn(i).GetName() for i in range(4)] == ["region", "feature", "value", "name"]
    assert len(rows) == len(node_values)
    by_name = {r["name"]: r for r in rows}
    assert by_name["peri3_original_glcm_Contrast"]["region"] == "peri3"
    assert by_name["peri3_original_glcm_Contrast"]["feature"] == "original_glcm_Contrast"
    assert by_name["intra_original_shape_VoxelVolume"]["value"] == node_values["intra_original_shape_VoxelVolume"]


def test_background_job_equals_synchronous_and_cancels(mrml_scene, case, tmp_path):
    ph, params, d = case
    logic, vol, seg = _workspace(mrml_scene, ph)
    sync = logic.extractFeatures(vol, seg, params)
    image, regions = logic.featureRegions(vol, seg)
    job = runner.BackgroundJob(runner.prepare_job(image, regions.feature_masks(), str(params), tmp_path / "job")).start()
    progress, deadline = [], time.monotonic() + 300
    while job.running and time.monotonic() < deadline:  # what the panel's QTimer does every 200 ms
        job.poll()
        progress.append(job.progress)
        time.sleep(0.05)
    assert job.wait(10) == 0, job.log
    assert progress == sorted(progress)
    out = job.result()
    assert out["features"] == pytest.approx(sync, rel=1e-12)
    assert list(out["features"]) == list(sync)
    assert any(line.startswith("PROGRESS") for line in job.log) and job.progress >= 0.98

    slow = runner.BackgroundJob(runner.prepare_job(image, regions.feature_masks(), str(params), tmp_path / "job2"))
    slow.python = slow.python  # same interpreter
    slow.start()
    slow.cancel(wait=True)  # the GUI does not wait; it polls until the group has gone
    assert not slow.running and slow.returncode != 0
    with pytest.raises(UserError, match="cancelled"):
        slow.result()

    bad = runner.BackgroundJob(runner.prepare_job(image, regions.feature_masks(), str(tmp_path / "nope.yaml"), tmp_path / "job3"))
    assert bad.start().wait(120) == 2
    with pytest.raises(UserError, match="parameter file not found"):
        bad.result()


def _card(task: str, features: list[str], values: dict[str, float], phash: str, coef: list[float], intercept: float) -> dict:
    """A valid model card whose scaler centres the case near its own values."""
    from mrml_scene import model_card

    mean = [values[f] * 0.9 for f in features]
    scale = [abs(values[f]) * 0.2 + 1e-3 for f in features]
    return model_card(task, features, mean, scale, coef, intercept, phash)


def _expected_p(card, values):
    z = [(values[f] - m) / s for f, m, s in zip(card["features"], card["scaler"]["mean"], card["scaler"]["scale"], strict=True)]
    contrib = [b * zi for b, zi in zip(card["coefficients"], z, strict=True)]
    logit = card["intercept"] + sum(contrib)
    return 1.0 / (1.0 + math.exp(-logit)), dict(zip(card["features"], contrib, strict=True)), logit


def test_prediction_tables_chart_and_session(mrml_scene, case, tmp_path):
    from her2radiomics.features import load_params, parameter_file_hash

    ph, params, d = case
    logic, vol, seg = _workspace(mrml_scene, ph)
    values = logic.extractFeatures(vol, seg, params)
    phash = parameter_file_hash(load_params(params))
    f1 = ["intra_original_firstorder_Mean", "peri3_original_glcm_Contrast", "peri1_original_firstorder_Entropy"]
    f2 = ["intra_original_glcm_JointEntropy", "peri5_original_firstorder_Skewness"]
    c1, c2 = _card("stage1", f1, values, phash, [0.8, -0.5, 0.3], -0.4), _card("stage2", f2, values, phash, [0.6, 0.2], 0.1)
    (tmp_path / "s1.json").write_text(json.dumps(c1), encoding="utf-8")
    (tmp_path / "s2.json").write_text(json.dumps(c2), encoding="utf-8")
    logic.state.case_id = "P001"
    res = logic.predict(tmp_path / "s1.json", tmp_path / "s2.json")

    p1, contrib1, logit1 = _expected_p(c1, values)
    p2, contrib2, logit2 = _expected_p(c2, values)
    pred_rows = table_rows(res.table_node)
    assert len(pred_rows) == 1
    r = pred_rows[0]
    for col in ("case_id", "p_positive", "p_low", "p_zero", "stage1_call", "stage2_call"):
        assert col in r
    assert r["case_id"] == "P001"
    assert r["p_positive"] == pytest.approx(p1, rel=1e-9)
    assert r["p_low"] == pytest.approx((1 - p1) * p2, rel=1e-9)
    assert r["p_zero"] == pytest.approx((1 - p1) * (1 - p2), rel=1e-9)
    assert r["p_positive"] + r["p_low"] + r["p_zero"] == pytest.approx(1.0)
    assert r["stage1_call"] == ("positive" if p1 >= 0.5 else "negative")
    assert r["stage2_call"] == ("low" if p2 >= 0.5 else "zero")

    crow = table_rows(res.contributions_node)
    cols = [res.contributions_node.GetTable().GetColumn(i).GetName() for i in range(res.contributions_node.GetTable().GetNumberOfColumns())]
    assert cols[:7] == ["case_id", "stage", "feature", "value", "z", "coefficient", "contribution"] and "label" in cols
    assert len(crow) == len(f1) + len(f2)
    for stage, expected, logit, card in (("stage1", contrib1, logit1, c1), ("stage2", contrib2, logit2, c2)):
        got = {x["feature"]: x["contribution"] for x in crow if x["stage"] == stage}
        assert got == pytest.approx(expected, rel=1e-9)
        assert card["intercept"] + sum(got.values()) == pytest.approx(logit, rel=1e-9)
        mags = [abs(x["contribution"]) for x in crow if x["stage"] == stage]
        assert mags == sorted(mags, reverse=True)
    assert all("·" in x["label"] or x["label"] for x in crow)

    chart = res.chart_node
    assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetNumberOfPlotSeriesNodes() == 2
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeBar
    assert series.GetYColumnName() == "contribution" and series.GetLabelColumnName() == "label"
    bars = slicer.util.arrayFromTableColumn(series.GetTableNode(), "contribution")
    assert sorted(np.abs(bars), reverse=True) == pytest.approx(np.abs(bars))
    assert res.gdi["stage1"] == [("test", pytest.approx(0.15 / 0.85), "warning")]

    # region statistics table: the core's numbers
    stats = {row["region"]: row for row in table_rows(logic.regionStatsTable())}
    assert set(stats) == {"intra", "peri1", "peri3", "peri5"}
    for name, st in logic.state.regions.stats.items():
        assert stats[name]["voxels"] == st["voxels"]
        if name != "intra":
            assert stats[name]["excluded_mm3"] == pytest.approx(st["excluded_mm3"])
            assert stats[name]["clipped_mm3"] == pytest.approx(st["clipped_mm3"])

    # save the session, reload it into a fresh scene: voxel-exact segments, complete audit
    out = tmp_path / "session"
    audit = session.save_session(out, logic, vol, seg)
    assert {p.name for p in out.iterdir()} == {"segmentation.seg.nrrd", "features.csv", "regions.json", "predictions.json", "audit.json"}
    names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())]
    before = {n: sitk.GetArrayFromImage(mb.mask_from_segment(seg, n, vol)) for n in names}
    colors = {n: seg.GetSegmentation().GetSegment(mb.segment_id(seg, n)).GetColor() for n in names}
    node, loaded = session.load_session(out)
    assert loaded == audit
    assert [node.GetSegmentation().GetNthSegment(i).GetName() for i in range(node.GetSegmentation().GetNumberOfSegments())] == names
    for n in names:
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mb.mask_from_segment(node, n, vol)), before[n], err_msg=n)
        assert node.GetSegmentation().GetSegment(mb.segment_id(node, n)).GetColor() == pytest.approx(colors[n])
    for key in session.AUDIT_KEYS:
        assert key in loaded
    assert loaded["who"] == getpass.getuser()
    assert "not for clinical use" in loaded["intended_use"].lower()
    assert loaded["parameters"]["distances_mm"] == [1.0, 3.0, 5.0]
    assert loaded["parameters"]["parameter_file_hash"] == phash
    for shell in ("peri1", "peri3", "peri5"):
        st = logic.state.regions.stats[shell]
        assert loaded["excluded_mm3_per_shell"][shell]["excluded_mm3"] == pytest.approx(st["excluded_mm3"])
        assert loaded["excluded_mm3_per_shell"][shell]["excluded_pectoralis_mm3"] == pytest.approx(st["excluded_pectoralis_mm3"])
    assert loaded["exclusions"]["pectoralis"]["state"] == "user"
    assert loaded["model_cards"]["stage1"]["checksum"] == c1["checksum"]
    assert loaded["model_cards"]["stage2"]["checksum"] == c2["checksum"]
    assert loaded["software"]["her2radiomics"] and loaded["software"]["SimpleITK"] == sitk.Version_VersionString()
    assert loaded["prediction"]["p_positive"] == pytest.approx(p1)
    with open(out / "features.csv", encoding="utf-8") as f:
        saved = next(csv.DictReader(f))
    assert saved["case_id"] == "P001" and float(saved["peri3_original_glcm_Contrast"]) == values["peri3_original_glcm_Contrast"]
    pred_json = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert pred_json["prediction"]["p_low"] == pytest.approx((1 - p1) * p2)

    # a tampered file is refused
    (out / "features.csv").write_text("case_id\nx\n", encoding="utf-8")
    with pytest.raises(UserError, match="modified after"):
        session.load_session(out)
