"""ImageNet initialisation (``model.pretrained``, ``fusepose.load_pretrained_backbone``).

The official HRNet-W32 ImageNet file (``hrnet_w32-36af842e.pth``) is not downloadable here, so
its layout is rebuilt from the official code's construction rules
(HRNet-Image-Classification ``lib/models/cls_hrnet.py``: ``_make_layer``,
``_make_transition_layer``, ``HighResolutionModule._make_fuse_layers``, ``_make_head``), written
out below without looking at fusepose's modules. The official HigherHRNet ``init_weights``
takes from it every name its pose net has: 1,752 of the pose net's 1,810 tensors.
"""

from __future__ import annotations

import pytest
import torch

import fusepose
from fusepose.errors import CheckpointError
from fusepose.models import convert, create_model
from fusepose.models.pretrained import load_pretrained_backbone

W32 = (32, 64, 128, 256)
MODULES = {2: 1, 3: 4, 4: 3}  # HR modules of stages 2-4


def _bn(prefix: str, c: int, counters: bool) -> dict[str, tuple[int, ...]]:
    out = {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}
    if counters:
        out[f"{prefix}.num_batches_tracked"] = ()
    return out


def _conv(name: str, cout: int, cin: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (cout, cin, k, k)}


def _bottleneck(p: str, cin: int, planes: int, counters: bool) -> dict[str, tuple[int, ...]]:
    d = {**_conv(f"{p}.conv1", planes, cin, 1), **_bn(f"{p}.bn1", planes, counters),
         **_conv(f"{p}.conv2", planes, planes, 3), **_bn(f"{p}.bn2", planes, counters),
         **_conv(f"{p}.conv3", 4 * planes, planes, 1), **_bn(f"{p}.bn3", 4 * planes, counters)}  # fmt: skip
    if cin != 4 * planes:
        d.update(_conv(f"{p}.downsample.0", 4 * planes, cin, 1))
        d.update(_bn(f"{p}.downsample.1", 4 * planes, counters))
    return d


def official_hrnet_cls_layout(
    widths=W32, counters: bool = True, num_classes: int = 1000
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official ImageNet HRNet classifier (cls_hrnet.py)."""
    d: dict[str, tuple[int, ...]] = {}
    d.update(_conv("conv1", 64, 3, 3) | _bn("bn1", 64, counters))
    d.update(_conv("conv2", 64, 64, 3) | _bn("bn2", 64, counters))
    for k in range(4):
        d.update(_bottleneck(f"layer1.{k}", 64 if k == 0 else 256, 64, counters))
    prev = [256]
    for s in (2, 3, 4):
        cur = list(widths[:s])
        t = f"transition{s - 1}"
        for i, c in enumerate(cur):
            if i < len(prev):
                if prev[i] != c:
                    d.update(_conv(f"{t}.{i}.0", c, prev[i], 3) | _bn(f"{t}.{i}.1", c, counters))
            else:
                for j in range(i + 1 - len(prev)):
                    out = c if j == i - len(prev) else prev[-1]
                    d.update(_conv(f"{t}.{i}.{j}.0", out, prev[-1], 3))
                    d.update(_bn(f"{t}.{i}.{j}.1", out, counters))
        for m in range(MODULES[s]):
            p = f"stage{s}.{m}"
            for b, c in enumerate(cur):
                for k in range(4):  # BasicBlocks
                    q = f"{p}.branches.{b}.{k}"
                    d.update(_conv(f"{q}.conv1", c, c, 3) | _bn(f"{q}.bn1", c, counters))
                    d.update(_conv(f"{q}.conv2", c, c, 3) | _bn(f"{q}.bn2", c, counters))
            for i in range(len(cur)):  # the classifier: multi-scale output everywhere
                for j in range(len(cur)):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        d.update(
                            _conv(f"{f}.0", cur[i], cur[j], 1) | _bn(f"{f}.1", cur[i], counters)
                        )
                    for k in range(i - j):
                        out = cur[i] if k == i - j - 1 else cur[j]
                        d.update(_conv(f"{f}.{k}.0", out, cur[j], 3))
                        d.update(_bn(f"{f}.{k}.1", out, counters))
        prev = cur
    head = (32, 64, 128, 256)
    for i, c in enumerate(widths):
        d.update(_bottleneck(f"incre_modules.{i}.0", c, head[i], counters))
    for i in range(3):
        d.update(_conv(f"downsamp_modules.{i}.0", 4 * head[i + 1], 4 * head[i], 3))
        d[f"downsamp_modules.{i}.0.bias"] = (4 * head[i + 1],)
        d.update(_bn(f"downsamp_modules.{i}.1", 4 * head[i + 1], counters))
    d.update(_conv("final_layer.0", 2048, 1024, 1))
    d["final_layer.0.bias"] = (2048,)
    d.update(_bn("final_layer.1", 2048, counters))
    d["classifier.weight"] = (num_classes, 2048)
    d["classifier.bias"] = (num_classes,)
    return d


def _random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randint(0, 1000, (), generator=g) if k.endswith("num_batches_tracked")
        else torch.randn(shape, generator=g)
        for k, shape in layout.items()
    }  # fmt: skip


def test_official_imagenet_layout_loads_1752_tensors_into_higherhrnet_w32(tmp_path):
    layout = official_hrnet_cls_layout()
    # HRNet-W32-C: 41.2 M parameters (official README); the layout above is that network
    params = sum(torch.Size(s).numel() for k, s in layout.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))  # fmt: skip
    assert round(params / 1e6, 1) == 41.2
    state = _random_state(layout)
    path = tmp_path / "hrnet_w32-36af842e.pth"
    torch.save(state, path)
    model = create_model("higherhrnet_w32")
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    report = fusepose.load_pretrained_backbone(model, path)
    assert report.layout == "hrnet"
    assert len(report.loaded) == 1752 and report.missing == [] and report.mismatched == []
    assert len(model.state_dict()) == 1810  # the official init takes 1,752 of these
    # what is left out: the classification head and the classifier's extra fusion layers
    unused = set(report.unexpected)
    assert unused == set(state) - {n for n in state if n.split(".")[0] in
                                   convert.OFFICIAL_BACKBONE_MODULES
                                   and not n.startswith(("stage4.2.fuse_layers.1",
                                                         "stage4.2.fuse_layers.2",
                                                         "stage4.2.fuse_layers.3"))}  # fmt: skip
    assert {n.split(".")[0] for n in unused} == {
        "incre_modules", "downsamp_modules", "final_layer", "classifier", "stage4"}  # fmt: skip
    # every tensor landed where the official name says, values unchanged
    own = model.state_dict()
    for name, tensor in state.items():
        if name not in unused:
            assert torch.equal(own[convert.official_to_fusepose_name(name)], tensor), name
    assert all(torch.equal(head_before[k], v) for k, v in model.head.state_dict().items())


def test_timm_hrnet_w32_safetensors_loads_the_same_weights(tmp_path):
    """timm's hrnet_w32 has the official names; its hub file is model.safetensors without BN
    step counters."""
    safetensors = pytest.importorskip("safetensors.torch")
    state = _random_state(official_hrnet_cls_layout(counters=False), seed=1)
    path = tmp_path / "model.safetensors"
    safetensors.save_file(state, str(path))
    model = create_model("higherhrnet_w32")
    report = load_pretrained_backbone(model, path)
    # 1,752 backbone tensors = 1,460 weights and statistics + 292 BN step counters
    assert len(report.loaded) == 1460 and report.missing == []
    assert report.backbone_tensors == 1752
    own = model.state_dict()
    assert torch.equal(own["backbone.stem.conv1.conv.weight"], state["conv1.weight"])
    assert torch.equal(  # lower -> higher resolution: 1x1 conv, BN, upsample
        own["backbone.stages.2.2.fuse_layers.0.3.0.bn.running_var"],
        state["stage4.2.fuse_layers.0.3.1.running_var"],
    )
    assert torch.equal(  # higher -> lower: the third stride-2 conv of the chain
        own["backbone.stages.2.1.fuse_layers.3.0.2.conv.weight"],
        state["stage4.1.fuse_layers.3.0.2.0.weight"],
    )
    # the same file as a timm training checkpoint ({"state_dict": ...}, DataParallel prefix)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}},
               tmp_path / "checkpoint-3.pth.tar")  # fmt: skip
    again = load_pretrained_backbone(
        create_model("higherhrnet_w32"), tmp_path / "checkpoint-3.pth.tar"
    )
    assert again.loaded == report.loaded


def test_another_architecture_is_refused_in_one_line(tmp_path):
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64),
              "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "fc.weight": torch.zeros(1000, 2048)}  # fmt: skip
    torch.save(resnet, tmp_path / "resnet50.pth")
    with pytest.raises(CheckpointError) as e:
        load_pretrained_backbone(create_model("higherhrnet_w32"), tmp_path / "resnet50.pth")
    assert "resnet50.pth" in str(e.value) and "\n" not in str(e.value)
    # HRNet-W18 names, other widths: the stem and stage 1 would fit, the rest does not
    torch.save(_random_state(official_hrnet_cls_layout((18, 36, 72, 144))), tmp_path / "w18.pth")
    with pytest.raises(CheckpointError, match=r"w18\.pth: a file of another architecture") as e:
        load_pretrained_backbone(create_model("higherhrnet_w32"), tmp_path / "w18.pth")
    assert "\n" not in str(e.value)
    # the official ImageNet HRNet-W32 into L-MFNet (Ghost blocks): refused, pretrain it instead
    torch.save(_random_state(official_hrnet_cls_layout()), tmp_path / "w32.pth")
    with pytest.raises(CheckpointError, match="fusepose pretrain"):
        load_pretrained_backbone(create_model("lmfnet"), tmp_path / "w32.pth")


def test_partial_load_of_the_shuffle_variant_reports_what_it_left(tmp_path):
    """HigherHRNet-W32 + Shuffle-Neck stage 1: everything but stage 1 (and the two transition
    convs that read its 128 instead of 256 channels) can come from the ImageNet HRNet-W32."""
    torch.save(_random_state(official_hrnet_cls_layout()), tmp_path / "w32.pth")
    model = create_model("higherhrnet_w32_shuffle")
    with pytest.raises(CheckpointError):
        load_pretrained_backbone(model, tmp_path / "w32.pth")
    report = load_pretrained_backbone(model, tmp_path / "w32.pth", strict=False)
    assert report.missing and all(k.startswith("backbone.stage1.") for k in report.missing)
    assert report.mismatched == [
        "backbone.transitions.0.0.0.conv.weight", "backbone.transitions.0.1.0.conv.weight"]  # fmt: skip
    assert any(k.startswith("layer1.") for k in report.unexpected)
    assert (
        len(report.loaded) + len(report.missing) + len(report.mismatched) <= report.backbone_tensors
    )
