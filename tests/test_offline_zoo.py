"""Every pretrained name without the files it needs: offline (``HF_HUB_OFFLINE=1``) or with no network, one
error at once, naming every file (the official weights and each model built from the Hub), where it goes and how
to get it there; never a retry loop. The network layer is replaced: offline it must not be called at all, with
no network every lookup fails at once and each request is counted. With the files in place (as the error says)
a name loads without the network; with a network (a local stand-in for the Hub) the real download code runs."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import httpx2
import pytest
import requests

from conftest import SHARED_FIXTURES
from fakescope.cli import main
from fakescope.errors import WeightsUnavailableError
from fakescope.models import resolve_model_config
from fakescope.zoo import list_pretrained, pretrained_entry
from fakescope.zoo.hub import download_path, home, hub_cache
from fakescope.zoo.pretrained import hub_models, pretrained_checkpoint, resolve_checkpoint

NAMES = list_pretrained()
UFD_HEAD = SHARED_FIXTURES / "weights" / "ufd_fc_weights.pth"
ORGANIKA = "hf_classifier.organika_sdxl_detector"
# huggingface_hub's own first request in a process (unless HF_HUB_DISABLE_TELEMETRY): a list of AI agents, asked
# once with a 3 s timeout and never retried; not a request for a model
AGENT_REGISTRY = "/api/agent-harnesses"


@pytest.fixture(autouse=True)
def empty_homes(tmp_path, monkeypatch) -> Path:
    """Empty FAKESCOPE_HOME and HF_HOME (huggingface_hub read its paths when imported: they are set too)."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("FAKESCOPE_HOME", str(tmp_path / "fakescope"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path


def set_offline(monkeypatch, on: bool) -> None:
    import huggingface_hub.constants as constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if on:
            monkeypatch.setenv(var, "1")
        else:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", on)


class Network:
    """What left the process: requests by URL (urllib, httpx2 as huggingface_hub uses it, requests), host lookups,
    and sleeps (a retry loop's backoff)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.lookups: list[str] = []
        self.sleeps: list[float] = []


@pytest.fixture
def no_network(monkeypatch) -> Network:
    """No network: every host lookup fails at once, as it does with no DNS; every request is recorded."""
    net = Network()

    def getaddrinfo(host, *args, **kwargs):
        net.lookups.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def recorded(original, url_of):
        def call(*args, **kwargs):
            net.requests.append(url_of(*args))
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib.request, "urlopen", recorded(urllib.request.urlopen,
                                                            lambda r, *a: getattr(r, "full_url", str(r))))
    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", recorded(httpx2.HTTPTransport.handle_request,
                                                                         lambda self, r, *a: str(r.url)))
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recorded(requests.adapters.HTTPAdapter.send,
                                                                       lambda self, r, *a: r.url))
    monkeypatch.setattr(time, "sleep", lambda s: net.sleeps.append(s))
    return net


def assert_names_everything(name: str, text: str) -> None:
    """The error names every file ``name`` needs, with the path it goes to, and the ways to get it there."""
    entry = pretrained_entry(name)
    assert name in text
    if entry.file is not None:
        assert entry.file.filename in text and entry.file.urls[0] in text
        assert str(download_path(entry.file)) in text  # the exact path in FAKESCOPE_HOME
        assert "--weights-file" in text
        if entry.file.sha256:
            assert entry.file.sha256 in text
        if entry.file.size:
            assert f"{entry.file.size:,} bytes" in text
    for model in hub_models(entry):
        folder = hub_cache() / f"models--{model.repo.replace('/', '--')}"
        assert model.repo in text and "config.json" in text and "model.safetensors" in text
        if model.revision:  # the snapshot folder of that commit
            assert model.revision in text and str(folder / "snapshots" / model.revision) in text
        else:  # main: a snapshot and the ref that names it
            assert str(folder / "snapshots") in text and str(folder / "refs" / "main") in text
        assert f"hf download {model.repo}" in text
    assert str(home() / "checkpoints" / name) in text  # a converted checkpoint copied from elsewhere also works
    assert str(home()) in text and str(hub_cache()) in text


# ------------------------------------------------------------------------------------------- offline
@pytest.mark.parametrize("name", NAMES)
def test_offline_a_name_fails_at_once_naming_every_file_and_where_it_goes(name, no_network, monkeypatch):
    set_offline(monkeypatch, True)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_checkpoint(name)
    assert (no_network.requests, no_network.lookups, no_network.sleeps) == ([], [], [])  # not one try
    assert "HF_HUB_OFFLINE" in str(err.value)
    assert_names_everything(name, str(err.value))


# ---------------------------------------------------------------------------------------- no network
@pytest.mark.parametrize("name", NAMES)
def test_with_no_network_a_name_fails_after_one_try_per_address(name, no_network, monkeypatch, caplog):
    set_offline(monkeypatch, False)
    entry = pretrained_entry(name)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_checkpoint(name)
    # each official address once; the Hub asked once, and not at all once the network was found missing
    expected = list(entry.file.urls) if entry.file is not None else []
    assert no_network.requests[:len(expected)] == expected
    hub_requests = [r for r in no_network.requests[len(expected):] if not r.endswith(AGENT_REGISTRY)]
    assert len(hub_requests) == (0 if entry.file is not None or not hub_models(entry) else 1), hub_requests
    assert sum(r.endswith(AGENT_REGISTRY) for r in no_network.requests) <= 1
    assert no_network.sleeps == []  # no backoff
    assert not [r for r in caplog.records if "retry" in r.getMessage().lower()]
    assert "no network" in str(err.value)
    assert_names_everything(name, str(err.value))


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "no-network"])
@pytest.mark.parametrize("name", NAMES)
def test_detect_prints_one_error_and_no_traceback_or_warnings(name, offline, no_network, monkeypatch, capsys,
                                                              tmp_path):
    from PIL import Image

    set_offline(monkeypatch, offline)
    Image.new("RGB", (40, 40), (90, 20, 160)).save(tmp_path / "x.png")
    assert main(["detect", str(tmp_path / "x.png"), "-m", name]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("fakescope: error: ") and err.count("fakescope: error:") == 1
    assert "Traceback" not in err and "WARNING" not in err and "Retrying" not in err
    assert_names_everything(name, err)
    assert no_network.sleeps == []


def test_the_entries_built_from_the_hub_name_their_repositories():
    # every entry whose model loads pretrained weights by name says which (a new entry is covered by the tests
    # above only if this finds its Hub models)
    for name in NAMES:
        entry = pretrained_entry(name)
        cfg = resolve_model_config(entry.arch, entry.model)
        assert bool(hub_models(entry)) == bool(cfg.pretrained and not cfg.weights), name
    univfd = hub_models(pretrained_entry("univfd_clip.progan"))
    assert [(m.repo, m.revision) for m in univfd] == [("openai/clip-vit-large-patch14", None)]
    assert "CLIPVisionModelWithProjection" in univfd[0].role
    organika = hub_models(pretrained_entry(ORGANIKA))
    assert [(m.repo, m.revision) for m in organika] == [("Organika/sdxl-detector",
                                                         "4979959f9edee49b4a82720342ff4a74148120d3")]


# ------------------------------------------------------------------------- the recipe, followed
def tiny_swin():
    import torch
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=2,
                        id2label={0: "artificial", 1: "human"}, label2id={"artificial": 0, "human": 1})
    torch.manual_seed(0)
    return SwinForImageClassification(config).eval()


def test_files_put_where_the_error_says_load_with_no_network(no_network, monkeypatch, tmp_path):
    set_offline(monkeypatch, False)
    model = hub_models(pretrained_entry(ORGANIKA))[0]
    tiny_swin().save_pretrained(hub_cache() / model.folder / "snapshots" / model.revision)
    ck = pretrained_checkpoint(ORGANIKA)
    assert (ck / "model.safetensors").is_file() and no_network.requests == [] and no_network.lookups == []


@pytest.mark.skipif(not UFD_HEAD.is_file(), reason="needs ../shared/fixtures/weights/ufd_fc_weights.pth")
def test_univfd_with_its_head_and_a_cached_clip_needs_no_network(no_network, monkeypatch):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    set_offline(monkeypatch, False)
    entry = pretrained_entry("univfd_clip.progan")
    clip = hub_models(entry)[0]
    # the head alone is not enough: the error names the CLIP backbone still missing, and the head as here
    with pytest.raises(WeightsUnavailableError) as err:
        pretrained_checkpoint(entry.name, weights_file=UFD_HEAD, progress=False)
    text = str(err.value)
    assert "openai/clip-vit-large-patch14" in text and f"Already here: fc_weights.pth ({UFD_HEAD})" in text
    probes = [r for r in no_network.requests if not r.endswith(AGENT_REGISTRY)]
    assert len(probes) == 1 and no_network.sleeps == []  # one probe of the Hub
    # as the error says: a snapshot of main's commit and refs/main naming it (a tiny CLIP with ViT-L's 768-d
    # projection stands in for the real one)
    commit = "c" * 40
    folder = hub_cache() / clip.folder
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                   num_attention_heads=2, patch_size=8, image_size=32,
                                                   projection_dim=768)).save_pretrained(folder / "snapshots" / commit)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    no_network.requests.clear()
    ck = pretrained_checkpoint(entry.name, weights_file=UFD_HEAD, progress=False)
    assert (ck / "model.safetensors").is_file() and no_network.requests == []


# --------------------------------------------------------------------------- with a network
class FakeHub(http.server.BaseHTTPRequestHandler):
    """The few Hub endpoints huggingface_hub uses to download a model's files: model info, file metadata, file."""

    repo, commit, files, log = "", "", {}, []

    def log_message(self, *args) -> None:
        pass

    def _reply(self, body: bytes | None, headers: dict[str, str], send: bool) -> None:
        self.send_response(200 if body is not None else 404)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        if send and body:
            self.wfile.write(body)

    def _route(self, send: bool) -> None:
        type(self).log.append(f"{self.command} {self.path}")
        info = f"/api/models/{self.repo}/revision/{self.commit}"
        if self.path.split("?")[0] == info:
            body = json.dumps({"id": self.repo, "modelId": self.repo, "sha": self.commit, "private": False,
                               "siblings": [{"rfilename": n} for n in self.files]}).encode()
            return self._reply(body, {"Content-Type": "application/json"}, send)
        prefix = f"/{self.repo}/resolve/{self.commit}/"
        name = self.path[len(prefix):] if self.path.startswith(prefix) else None
        body = self.files.get(name)
        etag = hashlib.sha256(body).hexdigest() if body is not None else ""
        self._reply(body, {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"'}, send)

    def do_GET(self) -> None:  # noqa: N802
        self._route(send=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(send=False)


def test_with_a_network_the_hub_model_is_downloaded_once_then_used(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    set_offline(monkeypatch, False)
    model = hub_models(pretrained_entry(ORGANIKA))[0]
    tiny_swin().save_pretrained(tmp_path / "upstream")
    FakeHub.repo, FakeHub.commit, FakeHub.log = model.repo, model.revision, []
    FakeHub.files = {p.name: p.read_bytes() for p in (tmp_path / "upstream").iterdir()} | {"README.md": b"card"}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        ck = pretrained_checkpoint(ORGANIKA)
        asked = [line for line in FakeHub.log if AGENT_REGISTRY not in line]
        assert asked[0].startswith(f"GET /api/models/{model.repo}/revision/{model.revision}")  # the probe
        fetched = sorted(line.rsplit("/", 1)[1] for line in asked if line.startswith("GET /" + model.repo))
        assert fetched == ["config.json", "model.safetensors"]  # what the model needs, nothing else
        snapshot = hub_cache() / model.folder / "snapshots" / model.revision
        assert (snapshot / "config.json").is_file() and (snapshot / "model.safetensors").is_file()
        assert (ck / "model.safetensors").is_file()
        # the next time: the converted checkpoint, not one request
        FakeHub.log.clear()
        assert resolve_checkpoint(ORGANIKA) == ck and not [line for line in FakeHub.log if AGENT_REGISTRY not in line]
    finally:
        server.shutdown()
        server.server_close()
