

@pytest.mark.slow  # importing coremltools alone took 114 s on a loaded 2-core machine
@_needs("coremltools")
def test_coreml_export_structural_check(tmp_path):
    _, weights = _trained_like("pplcnet_x0_25", tmp_path)
    result = export(weights, format="coreml", img=IMG, out=tmp_path / "m.mlpackage")
    rec = json.loads(result.sidecar.read_text())
    assert result.path.is_dir() and rec["format"] == "coreml"
    assert rec["coreml_check"]["verification_kind"] in ("structural", "numeric")
    assert rec["coreml_check"]["input"]["shape"] == [1, 3, IMG, IMG]
