"""`pretrained=True` and friends, with no network: a loopback HTTP server stands in for the
Hugging Face Hub (set as the endpoint) and for download.pytorch.org, serving weights that timm
and torchvision made here. Every cache (Hugging Face's, torch.hub's, leannet's) is a tmp dir.
"""

import hashlib
import http.server
import io
import json
import socket
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

import leannet
from leannet.cli import main
from leannet.errors import DownloadError, LeannetError, WeightsError
from leannet.weights import hub, sources
from leannet.weights.convert import detect_layout
from leannet.weights.layouts import LAYOUTS
from tests.weights.test_convert import assert_parity, perturbed

timm = pytest.importorskip("timm")
tvm = pytest.importorskip("torchvision.models")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "timm/lcnet_050.ra2_in1k"  # pplcnet_x0_5's default source


class Hub(http.server.ThreadingHTTPServer):
    """routes: URL path -> (body, extra headers); `short`: paths served cut in half (with a
    matching Content-Length, as a proxy that dropped the rest would); `lie`: paths whose GET
    body differs from the one the headers describe."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[bytes, dict]] = {}
        self.short: set[str] = set()
        self.lie: set[str] = set()
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add_hf(self, repo: str, filename: str, body: bytes, commit: str = COMMIT, lfs: bool = True) -> None:
        # An LFS file's ETag is its sha256 (huggingface_hub names the cached blob after it).
        etag = hashlib.sha256(body).hexdigest() if lfs else hashlib.sha1(body).hexdigest()
        self.routes[f"/{repo}/resolve/main/{filename}"] = (body, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'})


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, with_body: bool) -> None:
        server: Hub = self.server  # type: ignore[assignment]
        server.requests.append(f"{self.command} {self.path}")
        if self.path not in server.routes:
            repo_known = any(r.startswith(self.path.split("/resolve/")[0] + "/") for r in server.routes)
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound" if repo_known else "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, headers = server.routes[self.path]
        if with_body and self.path in server.short:
            body = body[: len(body) // 2]
        if with_body and self.path in server.lie:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._reply(with_body=False)

    def do_GET(self):
        self._reply(with_body=True)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Every cache in tmp; online unless a test says otherwise."""
    from huggingface_hub import constants

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # as if torch.hub.set_dir was never called
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    # Nothing listens there: a test that forgets the `server` fixture can't reach the internet.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    return {"hf": tmp_path / "hf", "torch": tmp_path / "torch", "leannet": tmp_path / "leannet_home"}


@pytest.fixture
def server(monkeypatch):
    srv = Hub()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", srv.url)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def timm_lcnet():
    """timm's lcnet_050 with perturbed weights, saved as its Hugging Face repo holds them
    (float32 safetensors + config.json), and the same model in float64 as the reference."""
    torch.manual_seed(1)
    ref = perturbed(timm.create_model("lcnet_050")).float()
    body = save({k: v.contiguous() for k, v in ref.state_dict().items()})
    config = json.dumps({"architecture": "lcnet_050", "num_classes": 1000}).encode()
    return ref.double().eval(), body, config


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def weight_files(caches) -> list[str]:
    """Files a later load could take for weights: HF blobs and snapshots, torch.hub
    checkpoints, anything in $LEANNET_HOME (HF's refs and .locks hold no weights)."""
    hf = [f for f in files(caches["hf"]) if "/blobs/" in f or "/snapshots/" in f]
    return hf + files(caches["torch"]) + files(caches["leannet"])


def assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    a, b = model.state_dict(), reference.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].double(), b[k].double()), k


def one_line(e: pytest.ExceptionInfo) -> str:
    assert isinstance(e.value, LeannetError)
    text = str(e.value)
    assert "\n" not in text, text
    return text


# --- Hugging Face: download, convert once, cache, verify ----------------------------------------


def test_pretrained_true_downloads_converts_and_gives_timms_logits(caches, server, timm_lcnet, monkeypatch):
    ref, body, config = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    server.add_hf(REPO, "config.json", config, lfs=False)

    ours = leannet.create_model("pplcnet_x0_5", pretrained=True).double().eval()
    assert_parity(ref, ours, size=32)

    target = hub.cache_path("pplcnet_x0_5", sources.weight_source("pplcnet_x0_5"))
    assert target == caches["leannet"] / "weights" / "pplcnet_x0_5" / "hf--timm--lcnet_050.ra2_in1k@main.safetensors"
    record = target.with_name(target.name + ".sha256").read_text().split()
    assert record == [hashlib.sha256(target.read_bytes()).hexdigest(), target.name]
    meta = leannet.weights.read_metadata(target)
    assert meta["source"]["repo"] == REPO and meta["source"]["commit"] == COMMIT
    assert meta["source"]["layout"] == "timm lcnet_*"
    # The download sits in huggingface_hub's own cache layout, blob named by its sha256.
    blob = caches["hf"] / "hub" / "models--timm--lcnet_050.ra2_in1k" / "blobs" / hashlib.sha256(body).hexdigest()
    assert blob.read_bytes() == body

    # Offline, the converted file serves with no request; the same holds for the timm tag and
    # the hf-hub: spelling of the same repo (one cache entry per source and revision).
    # (Same weights as the model checked above = same logits; float64 depthwise convs are slow.)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.requests.clear()
    for spec in (True, "lcnet_050.ra2_in1k", f"hf-hub:{REPO}"):
        assert_same_weights(leannet.create_model("pplcnet_x0_5", pretrained=spec), ours)
    assert server.requests == []
    assert len(list(target.parent.glob("*.safetensors"))) == 1

    # Only the Hugging Face cache left: offline still works (converted again from it).
    for p in target.parent.iterdir():
        p.unlink()
    assert_same_weights(leannet.create_model("pplcnet_x0_5", pretrained=True), ours)
    assert server.requests == [] and target.is_file()


def test_a_download_leaves_no_tqdm_monitor_thread(caches, server, timm_lcnet, monkeypatch):
    """tqdm's monitor thread, left by a download bar, aborted test processes later (SIGABRT in
    its lock): a download turns it off, whatever tqdm's setting was (tests/conftest.py turns it
    off for the whole suite; here it is back on, as in a user's process)."""
    import threading

    import tqdm
    from tqdm._monitor import TMonitor

    _, body, config = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    server.add_hf(REPO, "config.json", config, lfs=False)
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 10)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    leannet.create_model("pplcnet_x0_5", pretrained=True)
    assert server.requests  # a real download happened
    assert tqdm.tqdm.monitor_interval == 0
    assert not any(isinstance(t, TMonitor) for t in threading.enumerate())


def test_converted_file_is_checked_on_every_load(caches, server, timm_lcnet, monkeypatch):
    _, body, _ = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    leannet.create_model("pplcnet_x0_5", pretrained=True)
    target = hub.cache_path("pplcnet_x0_5", sources.weight_source("pplcnet_x0_5"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight: still a valid safetensors file
    target.write_bytes(bytes(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained=True)
    assert "sha256" in one_line(e) and str(target) in str(e.value)


def test_a_new_commit_on_main_is_converted_again(caches, server, timm_lcnet):
    _, body, _ = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    leannet.create_model("pplcnet_x0_5", pretrained=True)
    newer = {k: v + 1 if v.is_floating_point() else v for k, v in timm.create_model("lcnet_050").state_dict().items()}
    server.add_hf(REPO, "model.safetensors", save(newer), commit="f" * 40)
    ours = leannet.create_model("pplcnet_x0_5", pretrained=True)
    assert torch.equal(ours.state_dict()["head.fc.weight"], newer["classifier.weight"])
    target = hub.cache_path("pplcnet_x0_5", sources.weight_source("pplcnet_x0_5"))
    assert leannet.weights.read_metadata(target)["source"]["commit"] == "f" * 40


@pytest.mark.parametrize("failure", ["404 repo", "404 file", "truncated", "checksum"])
def test_failed_download_is_one_line_and_leaves_nothing(caches, server, timm_lcnet, failure):
    _, body, _ = timm_lcnet
    spec = True
    path = f"/{REPO}/resolve/main/model.safetensors"
    if failure == "404 repo":
        spec = "hf-hub:acme/no-such-repo"
    elif failure == "404 file":
        server.add_hf(REPO, "config.json", b"{}", lfs=False)  # the repo exists, the weights don't
    else:
        server.add_hf(REPO, "model.safetensors", body)
        (server.short if failure == "truncated" else server.lie).add(path)
    with pytest.raises(DownloadError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained=spec)
    text = one_line(e)
    expect = {"404 repo": "no such repository", "404 file": "HTTP 404",
              "truncated": "download of model.safetensors failed", "checksum": "sha256"}[failure]
    assert expect in text, text
    assert weight_files(caches) == []
    assert not [f for f in files(caches["hf"]) if f.endswith(".incomplete")]


def test_offline_without_cache_names_the_file_and_the_convert_command(caches, monkeypatch, timm_lcnet, tmp_path):
    ref, body, _ = timm_lcnet
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained=True)
    text = one_line(e)
    target = caches["leannet"] / "weights" / "pplcnet_x0_5" / "hf--timm--lcnet_050.ra2_in1k@main.safetensors"
    command = f"leannet convert CHECKPOINT --model pplcnet_x0_5 --out {target}"
    assert command in text and "model.safetensors of hf-hub:timm/lcnet_050.ra2_in1k" in text
    # Following the message (a checkpoint copied in by other means) makes pretrained=True work.
    copied = tmp_path / "model.safetensors"
    copied.write_bytes(body)
    assert main(command.replace("CHECKPOINT", str(copied)).split()[1:]) == 0
    assert_parity(ref, leannet.create_model("pplcnet_x0_5", pretrained=True).double().eval(), size=32)
    assert target.with_name(target.name + ".sha256").is_file()  # recorded on first load


def test_no_network_at_all_is_the_offline_path(caches, monkeypatch):
    # `caches` points HF_ENDPOINT at a closed port: nothing listens, as with no network.
    # huggingface_hub retries a refused connection with back-off (~20 s); not here.
    import types

    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=lambda s: None))
    with pytest.raises(DownloadError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained=True)
    assert "can't be reached" in one_line(e) and "leannet convert CHECKPOINT" in str(e.value)
    assert weight_files(caches) == []


def test_a_host_that_does_not_resolve_is_offline_without_retries(caches, monkeypatch):
    """No DNS (a machine without network): one line that says so, at once; huggingface_hub is
    asked for the caches only, never for a request it would retry five times."""
    import huggingface_hub

    asked = []
    real = huggingface_hub.hf_hub_download

    def spy(*a, **kw):
        asked.append(kw["local_files_only"])
        return real(*a, **kw)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    monkeypatch.setenv("HF_ENDPOINT", "https://no-such-host.invalid")
    with pytest.raises(DownloadError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained=True)
    assert "no-such-host.invalid does not resolve (no network?)" in one_line(e)
    assert asked and all(asked)
    assert weight_files(caches) == []


def test_timm_tag_for_another_model_is_refused(caches):
    with pytest.raises(WeightsError) as e:
        leannet.create_model("pplcnet_x0_5", pretrained="lcnet_100.ra2_in1k")
    assert "holds weights for pplcnet_x1_0, not pplcnet_x0_5" in one_line(e)


# --- torchvision URLs through torch.hub -----------------------------------------------------------


@pytest.fixture(scope="module")
def tv_shufflenet():
    torch.manual_seed(2)
    ref = perturbed(tvm.shufflenet_v2_x0_5()).float()
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    body = buf.getvalue()
    name = f"shufflenetv2_x0.5-{hashlib.sha256(body).hexdigest()[:10]}.pth"  # torchvision's naming
    return ref.double().eval(), body, name


def test_torchvision_url_downloads_with_torch_hub(caches, server, tv_shufflenet, monkeypatch):
    ref, body, name = tv_shufflenet
    server.routes[f"/models/{name}"] = (body, {})
    url = f"{server.url}/models/{name}"
    monkeypatch.setitem(sources.SOURCES, "shufflenetv2_x0_5", sources.torchvision(url, 60.552))

    ours = leannet.create_model("shufflenetv2_x0_5", pretrained=True).double().eval()
    assert_parity(ref, ours, size=32)
    assert (caches["torch"] / "hub" / "checkpoints" / name).read_bytes() == body
    target = hub.cache_path("shufflenetv2_x0_5", sources.weight_source("shufflenetv2_x0_5"))
    assert leannet.weights.read_metadata(target)["source"]["url"] == url
    # The same URL given directly is the same cache entry: no second request.
    server.requests.clear()
    assert_same_weights(leannet.create_model("shufflenetv2_x0_5", pretrained=url), ours)
    assert server.requests == []


@pytest.mark.parametrize("failure", ["404", "truncated", "checksum"])
def test_torchvision_url_failures_leave_nothing(caches, server, tv_shufflenet, failure):
    _, body, name = tv_shufflenet
    if failure == "checksum":
        name = name.replace(name.rsplit("-", 1)[1][:10], "0" * 10)  # a prefix the bytes don't have
    if failure != "404":
        server.routes[f"/models/{name}"] = (body, {})
    if failure == "truncated":
        server.short.add(f"/models/{name}")
        name_no_hash = name.rsplit("-", 1)[0] + ".pth"  # no hash to catch it: the read must
        server.routes[f"/models/{name_no_hash}"] = (body, {})
        server.short.add(f"/models/{name_no_hash}")
    with pytest.raises(DownloadError) as e:
        leannet.create_model("shufflenetv2_x0_5", pretrained=f"{server.url}/models/{name}")
    expect = {"404": "HTTP 404", "truncated": "sha256", "checksum": "sha256"}[failure]
    assert expect in one_line(e)
    if failure == "truncated":
        with pytest.raises(DownloadError) as e:
            leannet.create_model("shufflenetv2_x0_5", pretrained=f"{server.url}/models/{name_no_hash}")
        assert "damaged" in one_line(e)
    assert weight_files(caches) == []


# --- the table -----------------------------------------------------------------------------------


def test_every_registered_model_has_a_row():
    assert sorted(sources.SOURCES) == leannet.list_models()
    for name, src in sources.SOURCES.items():
        assert src.kind in ("hf", "url", "none"), name
        if src.kind == "none":
            assert src.note, f"{name}: say why there is no checkpoint"
        else:
            assert src.license and src.top1 and src.top1_source, name
        if src.layout not in (None, "leannet"):
            assert src.layout in {la.name for la in LAYOUTS}, f"{name}: unknown layout {src.layout!r}"


def test_torchvision_rows_match_torchvision():
    from torchvision.models import get_model_weights

    rows = {src.location: (name, src) for name, src in sources.SOURCES.items() if "pytorch.org" in src.location}
    for tv_name in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_3_2gf", "resnet50",
                    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"):
        w = get_model_weights(tv_name).IMAGENET1K_V1
        name, src = rows.pop(w.url)
        assert src.top1 == pytest.approx(w.meta["_metrics"]["ImageNet-1K"]["acc@1"]), name
        assert w.url.rsplit("-", 1)[1].startswith(src.sha256) and len(src.sha256) >= 8, name
    assert rows == {}


@pytest.mark.parametrize("name", [n for n, s in sources.SOURCES.items() if s.location.startswith("timm/")])
def test_timm_rows_match_timm_and_their_layout(name):
    src = sources.SOURCES[name]
    tag = src.location.removeprefix("timm/")
    cfg = timm.models.get_pretrained_cfg(tag)
    assert cfg is not None and cfg.hf_hub_id == src.location and cfg.license == src.license
    # The layout the converter picks for timm's keys is the one the row promises.
    with torch.device("meta"):
        theirs = timm.create_model(tag.partition(".")[0]).state_dict()
        ours = leannet.create_model(name)
    family = leannet.registry.model_info(name).family
    assert detect_layout(theirs, ours, family, tag).name == src.layout


# Registry rows whose preprocessing follows the paper's own code rather than timm's retrained
# weights: PaddleClas evaluates PP-LCNet with OpenCV's default (bilinear) resize.
_INTERPOLATION_FROM_PAPER_CODE = {"pplcnet_x0_5", "pplcnet_x0_75", "pplcnet_x1_0"}


@pytest.mark.parametrize("name", [n for n, s in sources.SOURCES.items() if s.location.startswith("timm/")])
def test_timm_rows_record_timms_preprocessing(name):
    """The preprocessing that travels with timm's weights (create_model's metadata, exports) is
    the one timm trained and evaluates them with: its pretrained_cfg."""
    cfg = timm.models.get_pretrained_cfg(sources.SOURCES[name].location.removeprefix("timm/"))
    pre = leannet.registry.model_info(name).preprocessing()
    assert pre["mean"] == pytest.approx(list(cfg.mean)) and pre["std"] == pytest.approx(list(cfg.std))
    assert pre["input_size"] == list(cfg.input_size) and pre["crop_pct"] == cfg.crop_pct
    if name not in _INTERPOLATION_FROM_PAPER_CODE:
        assert pre["interpolation"] == cfg.interpolation


def test_weights_command(caches, capsys):
    assert main(["weights", "pplcnet_x0_*", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"pplcnet_x0_25", "pplcnet_x0_35", "pplcnet_x0_5", "pplcnet_x0_75"}
    assert rows["pplcnet_x0_5"]["source"] == "hf-hub:timm/lcnet_050.ra2_in1k"
    assert rows["pplcnet_x0_5"]["top1"] == 63.138 and rows["pplcnet_x0_5"]["license"] == "apache-2.0"
    assert not rows["pplcnet_x0_5"]["cached"]
    target = Path(rows["pplcnet_x0_5"]["path"])
    target.parent.mkdir(parents=True)
    leannet.weights.save_weights(leannet.create_model("pplcnet_x0_5"), target, {"arch": "pplcnet_x0_5"})
    assert main(["weights", "pplcnet_x0_5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["name", "source", "license", "top-1"]
    assert table[1].split()[:6] == ["pplcnet_x0_5", "hf-hub:timm/lcnet_050.ra2_in1k", "apache-2.0", "63.138", "yes",
                                    "downloads"]


def test_models_without_automatic_weights_say_what_to_do(caches):
    with pytest.raises(WeightsError) as e:
        leannet.create_model("snet49", pretrained=True)
    assert "no public checkpoint" in one_line(e) and "leannet convert" in str(e.value)
    with pytest.raises(WeightsError) as e:
        leannet.create_model("pplcnet_x0_25", pretrained=True)
    assert "--trust-pickle" in one_line(e) and "PPLCNet_x0_25_pretrained.pdparams" in str(e.value)


def test_a_users_file_serves_models_without_a_public_checkpoint(caches):
    # Where the message above asks for it: $LEANNET_HOME/<name>.safetensors (as before sources).
    made = leannet.create_model("snet49")
    path = caches["leannet"] / "snet49.safetensors"
    leannet.weights.save_weights(made, path, {"arch": "snet49"})
    assert_same_weights(leannet.create_model("snet49", pretrained=True), made)
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
