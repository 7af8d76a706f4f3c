"""SFCL-HCMF, issue 17: the inter-block multi-scale frequency convolution, and CNN-F from ImageNet Xception by hub
name (offline, from a Hugging Face cache these tests write in timm's key layout), refused when left unset."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from fakescope.config import load_config
from fakescope.errors import ConfigError, WeightsUnavailableError
from fakescope.models import create_model, resolve_model_config
from fakescope.models.layers.xception import (IMAGENET_XCEPTION_FILE, IMAGENET_XCEPTION_HUB, IMAGENET_XCEPTION_REPO,
                                              REBUILT_KEYS, CNNF, XceptionBlock, load_imagenet_xception)
from fakescope.models.sfcl_hcmf.local import InterBlockConv

TINY = "sfcl_hcmf_tiny"
TINY_CNNF = dict(widths=[16, 24, 32, 48, 64], middle_blocks=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------- inter-block stage
def test_inter_block_stage_convolves_neighbouring_blocks_at_several_dilations():
    torch.manual_seed(0)
    ib = InterBlockConv(3, 64, kernel=3, dilations=[1, 2, 3]).eval()
    with torch.no_grad():  # non-trivial BN statistics and scales
        for mod in ib.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 64, 13, 13)
    bumped = x.clone()
    bumped[0, 1, 10, 6, 6] += 5.0  # one coefficient (colour 1, zigzag 10) of the block at (6, 6)
    with torch.no_grad():
        diff = (ib(bumped) - ib(x)).abs()
    assert diff.shape == x.shape
    changed = diff[0].sum(dim=(0, 1)) > 1e-6  # which blocks changed
    rows, cols = torch.nonzero(changed, as_tuple=True)
    # the widest branch (3x3, dilation 3) reaches 3 blocks away, and nothing further
    assert rows.min() == 3 and rows.max() == 9 and cols.min() == 3 and cols.max() == 9
    for d in (1, 2, 3):  # each dilation's taps: (6 +- d, 6 +- d)
        assert changed[6 + d, 6 - d] and changed[6, 6 + d]
    assert not changed[6 + 1, 6 + 2]  # between taps of different dilations: no kernel reaches it
    # depthwise: only that coefficient's channel changes, so SBCM still sees each coefficient as itself
    per_channel = diff[0].sum(dim=(2, 3))
    assert per_channel[1, 10] > 0 and float(per_channel.sum() - per_channel[1, 10]) == 0.0


def test_switch_between_multiscale_and_the_earlier_design():
    torch.manual_seed(0)
    ms = create_model(TINY).eval()
    torch.manual_seed(0)
    old = create_model(TINY, inter_block="none").eval()
    assert isinstance(ms.inter_block, InterBlockConv) and not hasattr(old, "inter_block")
    assert ms.cfg.inter_block_dilations == [1, 2, 3]
    x = ms.normalize(torch.rand(2, 3, 48, 48))
    y = x.clone()
    y[:, :, 16:24, 16:24] = torch.rand(2, 3, 8, 8)  # change one 8x8 block (block row 2, column 2)
    for model, spreads in ((ms, True), (old, False)):
        with torch.no_grad():
            a, b = model.features(x), model.features(y)
        moved = (a["X_f"] - b["X_f"]).abs().sum(dim=(0, 1)) > 1e-5
        assert moved[2, 2]
        # before CNN-F, only the inter-block stage mixes neighbouring blocks (SBCM works inside each block)
        assert bool(moved[2, 3] and moved[2, 5] and moved[5, 2]) is spreads
    assert "X~_inter" in ms.features(x) and "X~_inter" not in old.features(x)
    with pytest.raises(ValidationError, match="inter_block_kernel must be odd"):
        create_model(TINY, inter_block_kernel=2)


# --------------------------------------------------- ImageNet Xception
def timm_legacy_xception_state(in_channels: int = 128, widths=None, middle_blocks: int = 8) -> dict[str, torch.Tensor]:
    """A state dict with timm ``legacy_xception``'s key names and shapes (Xception's when the defaults are kept):
    stem ``conv1/bn1/conv2/bn2``, ``block1`` ... ``block12``, ``conv3/bn3/conv4/bn4``, classifier ``fc``."""
    torch.manual_seed(1)
    kw = {} if widths is None else {"widths": widths}
    body = CNNF(in_channels, middle_blocks=middle_blocks, **kw).state_dict()
    block1 = XceptionBlock(64, in_channels, 2, 2, start_with_relu=False).state_dict()
    state = {k: v.clone() for k, v in body.items()}
    state.update({f"block1.{k}": v for k, v in block1.items()})
    state["conv1.weight"] = torch.randn(32, 3, 3, 3)
    state["conv2.weight"] = torch.randn(64, 32, 3, 3)
    for bn, c in (("bn1", 32), ("bn2", 64)):
        state.update({f"{bn}.weight": torch.rand(c), f"{bn}.bias": torch.randn(c), f"{bn}.running_mean": torch.randn(c),
                      f"{bn}.running_var": torch.rand(c) + 0.5, f"{bn}.num_batches_tracked": torch.tensor(7)})
    state["fc.weight"] = torch.randn(1000, body["bn4.weight"].shape[0])
    state["fc.bias"] = torch.randn(1000)
    for k, v in state.items():  # trained-looking values, not an init that a random CNN-F could share
        if v.is_floating_point():
            state[k] = v + 0.01 * torch.randn_like(v)
    return state


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache; ``put(state)`` stores ``state`` as timm's legacy_xception.tf_in1k."""
    import huggingface_hub.constants as hub_constants
    from safetensors.torch import save_file

    cache = tmp_path / "hub"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    def put(state: dict[str, torch.Tensor]) -> None:
        repo = cache / ("models--" + IMAGENET_XCEPTION_REPO.replace("/", "--"))
        commit = "0123456789abcdef0123456789abcdef01234567"
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
        save_file({k: v.contiguous() for k, v in state.items()}, str(snap / IMAGENET_XCEPTION_FILE))

    return put


def test_full_size_cnnf_loads_timm_xception_by_hub_name_offline(hub_cache):
    state = timm_legacy_xception_state()  # Xception's shapes: block2 fed by 128 channels, conv4 2048
    hub_cache(state)
    cnnf = CNNF(192)  # SBCM's 192 channels
    report = load_imagenet_xception(cnnf, IMAGENET_XCEPTION_HUB)
    own = cnnf.state_dict()
    every = [k for k in own if k not in REBUILT_KEYS]
    assert len(every) > 200 and sorted(report["loaded"]) == sorted(every)  # every key lands
    for k in every:
        assert torch.equal(own[k], state[k]), k
    for k in REBUILT_KEYS:  # block2's first separable conv and shortcut: 192 inputs, random init
        assert own[k].shape[1] == 192 or own[k].shape[0] == 192
    dropped = set(report["dropped"])
    assert {"conv1.weight", "bn2.running_var", "block1.rep.0.pointwise.weight", "fc.weight"} <= dropped
    assert set(REBUILT_KEYS) <= dropped


def test_model_config_takes_the_hub_name_and_checkpoints_keep_the_weights(hub_cache, tmp_path):
    from fakescope.zoo.checkpoint import load, save

    state = timm_legacy_xception_state(8, TINY_CNNF["widths"], TINY_CNNF["middle_blocks"])
    hub_cache(state)
    torch.manual_seed(0)
    m = create_model(TINY, cnnf_weights=IMAGENET_XCEPTION_HUB)
    assert m.cnnf_init == f"ImageNet Xception from {IMAGENET_XCEPTION_HUB}"
    torch.testing.assert_close(m.cnnf.block3.rep[1].pointwise.weight, state["block3.rep.1.pointwise.weight"])
    ck = save(m, tmp_path / "ck")  # the checkpoint never goes back to the hub
    back = load(ck)
    assert torch.equal(back.cnnf.conv4.pointwise.weight, m.cnnf.conv4.pointwise.weight)
    # a downloaded snapshot folder works as a local source too
    folder = next((tmp_path / "hub").rglob(IMAGENET_XCEPTION_FILE)).parent
    torch.manual_seed(0)
    assert torch.equal(create_model(TINY, cnnf_weights=str(folder)).cnnf.bn3.weight, m.cnnf.bn3.weight)


def test_offline_without_the_file_is_an_error_that_says_what_to_do(hub_cache):
    with pytest.raises(WeightsUnavailableError) as err:
        create_model(TINY, cnnf_weights=IMAGENET_XCEPTION_HUB)
    text = str(err.value)
    assert IMAGENET_XCEPTION_REPO in text and IMAGENET_XCEPTION_FILE in text
    assert "cnnf_weights: /path/to/model.safetensors" in text and "cnnf_weights: none" in text
    with pytest.raises(WeightsUnavailableError, match="hf-hub:<organisation>/<repository>"):
        create_model(TINY, cnnf_weights="hf-hub:legacy_xception")


def test_paper_recipes_refuse_to_start_without_imagenet_cnnf():
    cfg = load_config("sfcl_hcmf/ffpp_c23")
    assert cfg.model.kwargs["cnnf_weights"] == IMAGENET_XCEPTION_HUB
    for name in ("ffpp_c23", "ffpp_c40", "no_sida", "no_faae", "concat_mlp", "xmanip_faceswap"):
        rec = resolve_model_config("sfcl_hcmf", load_config(f"sfcl_hcmf/{name}").model.kwargs)
        assert rec.pretrained and rec.cnnf_source == IMAGENET_XCEPTION_HUB, name
    with pytest.raises(ConfigError, match=r"(?s)'model\.cnnf_weights'.*cnnf_weights is not set.*`none`"):
        load_config("sfcl_hcmf/ffpp_c23", overrides=["model.cnnf_weights=null"])
    with pytest.raises(ValidationError, match="cnnf_weights is not set"):
        create_model("sfcl_hcmf", pretrained=True)
    # random init only when asked for by name; the ablation without a local branch has no CNN-F to load
    explicit = load_config("sfcl_hcmf/ffpp_c23", overrides=["model.cnnf_weights=none"])
    assert resolve_model_config("sfcl_hcmf", explicit.model.kwargs).cnnf_source is None
    assert resolve_model_config("sfcl_hcmf", load_config("sfcl_hcmf/no_local").model.kwargs).cnnf_source is None
    torch.manual_seed(0)
    assert create_model(TINY, cnnf_weights="none").cnnf_init == "random"
    assert create_model(TINY).cnnf_init == "random"  # pretrained: false (tests, synthetic benchmarks)
