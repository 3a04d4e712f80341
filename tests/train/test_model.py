"""The network: mrnet-baseline's shape, the volume path equal to the normalised path, initial weights."""

from __future__ import annotations

import pytest
import torch

from mrnet.infer.errors import InputError
from mrnet.train.model import MRNet, VolumeModel, load_pretrained, normalise


@pytest.mark.parametrize("backbone, channels", [("alexnet", 256), ("tiny", 32)])
def test_one_logit_per_exam_and_a_7x7_cam_per_slice(backbone, channels):
    model = MRNet(backbone).eval()
    volume = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        logit, cam = VolumeModel(model)(volume)
        assert logit.shape == (1,) and cam.shape == (3, 7, 7)
        assert model.classifier.in_features == channels
        # The shortcut of the volume path is exact: the same numbers as normalising first.
        assert torch.allclose(model.forward_volume(volume), model(normalise(volume)), atol=1e-5)
        # The exam's features are the max over slices of the per-slice averages: slice order does
        # not matter, and an added slice can raise a feature but never lower one.
        def exam_features(v):
            return model.pool(model.volume_features(v)).flatten(1).max(dim=0).values

        assert torch.allclose(model.forward_volume(volume.flip(0)), model.forward_volume(volume), atol=1e-6)
        blank = torch.cat([volume, torch.zeros(1, 256, 256, dtype=torch.uint8)])
        assert (exam_features(blank) >= exam_features(volume) - 1e-6).all()


@pytest.mark.parametrize("backbone", ["alexnet", "tiny"])
def test_the_exported_one_channel_path_equals_the_three_channel_one(backbone):
    # The export runs the first convolution on one channel with its weights summed over the three
    # copies of the slice; the features must be those of the faithful three-channel path.
    torch.manual_seed(0)
    model = MRNet(backbone).eval()
    volume = torch.randint(0, 256, (5, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        faithful = model.features(normalise(volume).contiguous())
        assert torch.allclose(model.volume_features(volume, one_channel=True), faithful, rtol=1e-4, atol=1e-5)
        logit, cam = VolumeModel(model)(volume)
        assert torch.allclose(logit, model.forward_volume(volume), atol=1e-5)


def test_normalisation_is_mrnet_baselines():
    x = normalise(torch.tensor([[[0.0, 58.09, 255.0]]]))
    assert x.shape == (1, 3, 1, 3)
    assert torch.allclose(x[0, :, 0], torch.tensor([-58.09 / 49.73, 0.0, (255 - 58.09) / 49.73]).expand(3, 3))


def test_pretrained_from_a_local_file_and_auto_without_a_cache(tmp_path, monkeypatch):
    source = MRNet("alexnet")
    path = tmp_path / "weights.pt"
    torch.save({"model": source.state_dict()}, path)
    target = MRNet("alexnet")
    assert load_pretrained(target, str(path)) == str(path)
    assert torch.equal(target.features[0].weight, source.features[0].weight)

    # No cache and no network (torchvision's download is made to fail as it does offline): auto
    # stops with a coded error that says where the file goes, instead of training from random weights.
    from torchvision.models import AlexNet_Weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    offline = OSError("no route to download.pytorch.org")
    monkeypatch.setattr(type(AlexNet_Weights.IMAGENET1K_V1), "get_state_dict",
                        lambda self, *a, **k: (_ for _ in ()).throw(offline))
    said = []
    with pytest.raises(InputError) as refused:
        load_pretrained(MRNet("alexnet"), "auto", announce=said.append)
    assert refused.value.code == "PRETRAINED_UNAVAILABLE" and refused.value.option == "pretrained"
    assert str(tmp_path / "empty-hub" / "checkpoints") in refused.value.message and "none" in refused.value.message
    assert len(said) == 1 and "download" in said[0]
    assert load_pretrained(MRNet("tiny"), "auto", announce=said.append) == "random" and len(said) == 1
    assert load_pretrained(MRNet("alexnet"), "none", announce=said.append) == "random"

    # With the download working (here: handing back known weights), auto starts from ImageNet.
    monkeypatch.setattr(type(AlexNet_Weights.IMAGENET1K_V1), "get_state_dict",
                        lambda self, *a, **k: {f"features.{k}": v for k, v in source.features.state_dict().items()})
    imagenet = MRNet("alexnet")
    assert load_pretrained(imagenet, "auto", announce=said.append) == "imagenet"
    assert torch.equal(imagenet.features[3].weight, source.features[3].weight)
