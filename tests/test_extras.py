"""The core install (no extras) creates, profiles and converts a model; a command that needs
an extra names it. Simulated by a fresh interpreter that sees site-packages without the
extras' packages (extras.EXTRA), since a second venv with torch takes minutes to build."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from leannet.extras import EXTRA

SRC = str(Path(__file__).resolve().parents[1] / "src")
# Distributions of the extras' packages, as their folders in site-packages are named.
DISTS = {"onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "onnxslim", "matplotlib", "scipy", "plotly",
         "scikit_learn", "scikit_image", "pycocotools", "timm", "fvcore"}


def _core_site(tmp_path: Path) -> Path:
    """A site-packages view without the extras: links to everything else installed."""
    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path / "site"
    view.mkdir()
    for entry in site.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in EXTRA or top in DISTS or top.startswith(("openvino", "onnxruntime")):
            continue
        (view / entry.name).symlink_to(entry)
    return view


def _core(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # -S: no site-packages (nor its .pth files); the view and leannet's source stand in for them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(_core_site(tmp_path))])}
    return subprocess.run([sys.executable, "-S", "-c", "import sys\n" + code], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def test_core_install_creates_profiles_and_converts(tmp_path):
    code = """
import json, torch, torchvision
from leannet import create_model, complexity
from leannet.cli import main
m = create_model("mobilenetv3_small_x1_0").eval()
c = complexity(m, img=64)["totals"]
torch.save(torchvision.models.mobilenet_v3_small().state_dict(), "tv.pth")
rc = main(["convert", "tv.pth", "--model", "mobilenetv3_small_x1_0", "--out", "out.safetensors"])
blocked = sorted(n for n in ("onnx", "onnxruntime", "openvino", "scipy", "sklearn", "skimage", "timm") if n in sys.modules)
print(json.dumps({"macs": c["macs"], "rc": rc, "blocked": blocked}))
"""
    done = _core(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and out["macs"] > 0 and out["blocked"] == []
    assert (tmp_path / "out.safetensors").is_file()


def test_commands_that_need_an_extra_name_it(tmp_path):
    code = """
from leannet.cli import main
print("rc", main(["bench", "pplcnet_x0_25", "--runtimes", "onnxruntime,openvino", "--img", "32",
                  "--min-time", "0.01", "--rounds", "1", "--out", "b"]))
print("rc", main(["export", "pplcnet_x0_25", "--out", "e.onnx", "--img", "32", "--random-weights"]))
"""
    done = _core(code, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("rc")] == ["rc 2", "rc 2"]
    bench_err, export_err = [line for line in done.stderr.splitlines() if line.startswith("leannet: error:")]
    assert "no runtime asked for can run here" in bench_err and "pip install 'leannet[deploy]'" in bench_err
    assert "needs onnx" in export_err and "pip install 'leannet[deploy]'" in export_err
