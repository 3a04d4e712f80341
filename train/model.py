"""The mrnet-baseline network, and the wrapper that carries its preprocessing into ONNX.

Per exam plane: every slice goes through a 2D backbone (AlexNet's `.features`), each slice's
feature map is average-pooled to one vector, the exam keeps the maximum over slices, and one
linear unit gives the logit. No dropout, no resize, no crop: exactly mrnet-baseline.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import alexnet

from mrnet.infer.errors import InputError
from mrnet.infer.registry import INTENSITY_MEAN, INTENSITY_STD

from .spec import BACKBONES

ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's IMAGENET1K_V1 file name


def tiny_features() -> nn.Sequential:
    """A small CNN with AlexNet's output grid (7 x 7 for a 256 x 256 slice), for demos and tests.

    It averages 4 x 4 pixel blocks first (256 -> 64), so a phantom exam trains in a few tens of
    milliseconds on a CPU; max pooling keeps small bright lesions alive down to the same 7 x 7 grid
    as AlexNet, so the head and the class activation maps work unchanged. Leaky ReLUs: trained from
    scratch at the demo's learning rate, plain ReLUs sometimes all died in the first epoch and the
    model never left a constant output (seen on phantoms). Each max pool comes before its
    activation, which gives the same function (the activation is increasing) on a quarter of the
    values. Widths 8-16-32: measured against 16-32-32 on the sagittal ACL phantom task, a training
    step was 2.3x faster and the model learned sooner (tuning AUC 0.98 at epoch 5).
    """
    return nn.Sequential(
        nn.AvgPool2d(4),  # 256 -> 64
        nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(3, 2), nn.LeakyReLU(0.1, inplace=True),  # 64 -> 31
        nn.Conv2d(8, 16, 3, padding=1), nn.MaxPool2d(3, 2), nn.LeakyReLU(0.1, inplace=True),  # 31 -> 15
        nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(3, 2), nn.LeakyReLU(0.1, inplace=True),  # 15 -> 7
    )


def normalise(volume: torch.Tensor) -> torch.Tensor:
    """(S, H, W) intensities 0..255 -> (S, 3, H, W) normalised as mrnet-baseline does."""
    x = (volume.to(torch.float32) - INTENSITY_MEAN) / INTENSITY_STD
    return x.unsqueeze(1).expand(-1, 3, -1, -1)


class MRNet(nn.Module):
    """mrnet-baseline: backbone per slice, average pool, max over slices, Linear(C, 1)."""

    def __init__(self, backbone: str = "alexnet"):
        super().__init__()
        if backbone not in BACKBONES:
            raise InputError("BAD_OPTION", f"one of {', '.join(BACKBONES)}, not {backbone!r}", option="backbone")
        self.backbone_name = backbone
        self.features = alexnet(weights=None).features if backbone == "alexnet" else tiny_features()
        channels = 256 if backbone == "alexnet" else 32
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised (S, 3, H, W) -> the exam logit, shape (1,)."""
        return self.head(self.features(x))

    def volume_features(self, volume: torch.Tensor, one_channel: bool = False) -> torch.Tensor:
        """Feature maps (S, C, h, w) of a (S, H, W) volume in 0..255, preprocessing included.

        Equal to `features(normalise(volume))`. The tiny backbone starts with a 4 x 4 average,
        which commutes with the normalisation and the channel copies, so it averages the
        one-channel volume first: the same numbers for a twelfth of the memory traffic.

        `one_channel` runs the first convolution on the one-channel slice with its weights summed
        over the three input channels, which are copies of one: exact up to rounding, a third of
        that layer's multiply-adds. The export uses it (ONNX Runtime: about 1.1x faster per exam);
        training does not, because torch's oneDNN runs a one-channel convolution slower than the
        three-channel one (a training step measured 0.66x as fast for tiny, 0.92x for alexnet).
        """
        features = self.features
        if self.backbone_name == "tiny":
            volume = features[0](volume.to(torch.float32).unsqueeze(1)).squeeze(1)
            features = features[1:]
        if not one_channel:
            return features(normalise(volume).contiguous(memory_format=torch.channels_last))
        first = features[0]
        x = ((volume.to(torch.float32) - INTENSITY_MEAN) / INTENSITY_STD).unsqueeze(1)
        x = F.conv2d(x, first.weight.sum(dim=1, keepdim=True), first.bias, first.stride, first.padding)
        return features[1:](x)

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """(S, C, h, w) feature maps -> the exam logit: average per slice, max over slices, linear."""
        return self.classifier(self.pool(maps).flatten(1).max(dim=0).values)

    def forward_volume(self, volume: torch.Tensor) -> torch.Tensor:
        """The exam logit of a (S, H, W) volume in 0..255 (clean training and evaluation)."""
        return self.head(self.volume_features(volume))

    def forward_volume_with_cam(self, volume: torch.Tensor,
                                one_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit and the class activation map (S, h, w): the head's weights on each feature map."""
        maps = self.volume_features(volume, one_channel)
        cam = torch.einsum("c,schw->shw", self.classifier.weight[0], maps)
        return self.head(maps), cam


class VolumeModel(nn.Module):
    """What ships in ONNX: uint8 (S, 256, 256) in, preprocessing inside, logit and CAM out."""

    def __init__(self, net: MRNet):
        super().__init__()
        self.net = net

    def forward(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_volume_with_cam(volume, one_channel=True)


def _imagenet_alexnet(announce) -> dict:
    """torchvision's IMAGENET1K_V1 AlexNet state dict: from its cache, else downloaded into it."""
    from torchvision.models import AlexNet_Weights

    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS_FILE
    if not cached.exists():
        announce(f"No cached ImageNet AlexNet weights at {cached}: asking torchvision to download them.")
    try:
        return AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as error:  # noqa: BLE001 - no network, a proxy, a truncated file: all the same to the user
        raise InputError("PRETRAINED_UNAVAILABLE", f"ImageNet AlexNet weights are not in torchvision's cache and "
                         f"could not be downloaded ({type(error).__name__}); place {ALEXNET_WEIGHTS_FILE} in "
                         f"{cached.parent}, give a weights file, or choose none to start from random weights",
                         option="pretrained") from None


def load_pretrained(model: MRNet, pretrained: str, announce=print) -> str:
    """Initialise the backbone. Returns what was used ("imagenet", "random" or a path).

    `auto` and `imagenet` start AlexNet from ImageNet, as mrnet-baseline does: torchvision's cache
    first, then torchvision's download (into that cache); when neither works the run stops with
    PRETRAINED_UNAVAILABLE, which says where to place the file, rather than quietly training from
    random weights. `none` starts from random weights. A path loads a local file (a torchvision
    AlexNet state dict, or a full MRNet state dict). The tiny backbone has no pretrained weights.
    """
    if model.backbone_name != "alexnet" or pretrained == "none":
        return "random"
    if pretrained in ("auto", "imagenet"):
        state = _imagenet_alexnet(announce)
        model.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                        if k.startswith("features.")})
        return "imagenet"
    path = Path(pretrained)
    if not path.is_file():
        raise InputError("BAD_PRETRAINED", "no such weights file (or auto, none, imagenet)", path,
                         option="pretrained")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a file that is no checkpoint
        raise InputError("BAD_PRETRAINED", f"not a torch weights file ({type(error).__name__})", path,
                         option="pretrained") from None
    state = state.get("model", state)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise InputError("BAD_PRETRAINED", "holds no 'features.*' weights", path, option="pretrained")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.features.load_state_dict(features)
    return str(path)
