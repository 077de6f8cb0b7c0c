"""Mutation testing one module at a time: `python scripts/mutate.py layers.fusion [...]`.

mutmut 3 takes one test selection for the whole campaign and maps tests to functions on a
clean run of all of it; a fusion mutant then runs every test that ever reached `fuse_bn`,
including whole-model parity tests of a minute each. Here each module gets its own campaign
directory (.mutmut/<module>/: symlinks to src/ and tests/, and a pyproject.toml holding the
pytest settings and a [tool.mutmut] narrowed to that module and the tests that judge it), so
a campaign is minutes, and its results stay there for `mutmut results` / `mutmut show`.

    python scripts/mutate.py layers.fusion              # run (resumes), then list survivors
    python scripts/mutate.py --all                      # every module in MODULES, in turn
    python scripts/mutate.py layers.fusion -- results   # any mutmut command in that campaign

Runs mutmut under `nice -n 19` with one child: the machines have two cores, shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module (dotted, under leannet) -> the default-tier tests that judge it. Fast files only:
# a survivor runs all of them, so a whole-model test here costs minutes per mutant.
MODULES: dict[str, list[str]] = {
    "layers.fusion": ["tests/layers/test_fusion.py", "tests/layers/test_rep_block.py"],
    "layers.rep_block": ["tests/layers/test_fusion.py", "tests/layers/test_rep_block.py"],
    "detect.evaluate": ["tests/detect/test_evaluate.py", "tests/detect/test_data.py"],
    # the by-hand toy nets, the CLI, and fvcore parity on two small models (one of them with
    # cat/shuffle ops outside leaf modules); every-model parity stays in `make test`
    "profile.complexity": [f"tests/profile/test_complexity.py::{t}" for t in (
        "test_toy_net_by_hand", "test_complexity_of_a_module_reads_its_name_and_channels",
        "test_views_give_no_row_and_a_tensor_read_twice_counts_once",
        "test_functional_params_are_charged_once_to_the_op_that_reads_them",
        "test_a_leaf_sums_the_macs_and_activations_of_its_ops",
        "test_bytes_follow_dtype", "test_shared_module_params_counted_once",
        "test_deployed_changes_params_and_matches_deployed_module", "test_cli_json_schema",
        "test_counts_match_fvcore[pplcnet_x0_25]", "test_counts_match_fvcore[shufflenetv2_x0_5]")],
    # the rewrite itself (graph-level known answers, ORT on a hand-built gate), two small
    # quantize_onnx runs, the OpenVINO path on a tiny model and the calibration set's reading;
    # the digits-model tests train a model first (a minute) and stay in `make test`
    "deploy.quantize": [f"tests/deploy/test_quantize.py::{t}" for t in (
        "test_hardsigmoid_gate_requantized_exactly", "test_other_hardsigmoids_are_left_alone",
        "test_a_second_gate_is_rewritten_and_counted", "test_hardsigmoids_outside_a_quantised_chain_are_left_alone",
        "test_fp32_stem_of_graphs_without_a_conv_or_readers_of_its_output",
        # a three-conv net at 16 px exported with a fixed batch of 2 (~2 s a run)
        "test_onnx_int8_of_a_fixed_batch_model_with_its_scratch_folder_beside_the_output",
        "test_onnx_int8_with_calibration_inputs_of_the_wrong_shape_is_one_clear_error",
        "test_stem_stays_fp32_unless_a_maxpool_reads_it",
        "test_onnx_int8_of_a_maxpool_stem_runs_the_pool_in_nhwc", "test_onnx_int8_keeps_the_stem_conv_in_fp32",
        # has_vnni on made-up /proc/cpuinfo texts; quantize_openvino on a tiny untrained
        # PP-LCNet (~8 s a run): its weight codes show which overflow fix NNCF applied
        "test_has_vnni_reads_the_cpu_flags", "test_has_vnni_without_proc_cpuinfo_keeps_nncfs_default",
        "test_openvino_int8_of_a_tiny_model_uses_7_bit_weights_without_vnni",
        # a three-conv net at 16 px, fixed batch 2 (~3 s a run): chunking and the bias correction
        "test_openvino_int8_of_a_fixed_batch_ir_keeps_the_batch", "test_openvino_int8_uses_full_bias_correction",
        "test_openvino_int8_with_calibration_inputs_of_the_wrong_shape_is_one_clear_error")] + [
        "tests/deploy/test_calibration.py",
        "tests/data/test_images.py::test_a_bare_path_is_an_error_for_training_and_unlabeled_for_calibration",
        "tests/detect/test_export.py::test_unreadable_calibration_images_are_skipped_and_reported_as_classification_does"],
    # the whole file but three parity tests (13 s of its ~35) whose layouts add no code path in
    # convert.py: timm resnet50 and tresnet_m renames (lcnet/mobilenetv1/official TResNet take
    # the same ones), apple MobileOne-S4 unfused (the apple layout is judged by the
    # re-parameterised S0 test); every one stays in `make test`
    "weights.convert": ["tests/weights/test_convert.py"] + [
        a for t in ("test_timm_parity[resnet50-resnet50-.safetensors]", "test_tresnet_parity[timm]",
                    "test_mobileone_unfused_parity[apple-s4]")
        for a in ("--deselect", f"tests/weights/test_convert.py::{t}")],
}


def _toml_value(v) -> str:
    # JSON strings, lists and booleans are valid TOML for the plain values used here
    return json.dumps(v)


def campaign_dir(module: str) -> Path:
    """Create (or refresh) the campaign directory of `module` and return it."""
    if module not in MODULES:
        sys.exit(f"unknown module {module!r}; choose from {', '.join(MODULES)}")
    d = ROOT / ".mutmut" / module
    d.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests"):
        link = d / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_ini = dict(project["tool"]["pytest"]["ini_options"])
    mutmut = dict(project["tool"].get("mutmut", {}))
    mutmut["only_mutate"] = [f"src/leannet/{module.replace('.', '/')}.py"]
    mutmut["pytest_add_cli_args_test_selection"] = MODULES[module]
    # torch's thread pools are not fork-safe: fork workers from a server that never ran a test
    mutmut.setdefault("process_isolation", "forkserver")
    lines = ["# written by scripts/mutate.py from ../../pyproject.toml; edits are overwritten", "",
             "[tool.pytest.ini_options]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in pytest_ini.items()]
    lines += ["", "[tool.mutmut]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in mutmut.items()]
    text = "\n".join(lines) + "\n"
    path = d / "pyproject.toml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return d


def mutmut(module: str, args: list[str]) -> int:
    exe = Path(sys.executable).with_name("mutmut")
    cmd = ["nice", "-n", "19", str(exe), *args]
    env = {**os.environ, "LEANNET_TEST_THREADS": os.environ.get("LEANNET_TEST_THREADS", "1")}
    print(f"== {module}: {' '.join(cmd[3:])}", flush=True)
    return subprocess.call(cmd, cwd=campaign_dir(module), env=env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("module", nargs="?", help=f"one of: {', '.join(MODULES)}")
    p.add_argument("--all", action="store_true", help="every module in turn")
    p.add_argument("mutmut_args", nargs="*", help="after --: a mutmut command instead of run + results")
    a = p.parse_args(argv)
    if a.all == (a.module is not None):
        p.error("give one module or --all")
    rc = 0
    for module in MODULES if a.all else [a.module]:
        if a.mutmut_args:
            rc |= mutmut(module, a.mutmut_args)
        else:
            rc |= mutmut(module, ["run", "--max-children", "1"])
            mutmut(module, ["results"])
    return rc


if __name__ == "__main__":
    sys.exit(main())
