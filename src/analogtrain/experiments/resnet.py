"""ResNet-18/34/50 in pure torch and the ``cifar_resnet`` task (2502.06309 Sec. 6, App. K.3-K.4).

The paper fine-tunes ImageNet-pretrained ResNets on CIFAR-10/100 with only the last layer
analog (``train.layers = ["fc"]``) or a chosen block (``["layer4"]``); the backbone stays digital
and is trained by the same optimizer. Module names follow torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ..., ``fc``), so a torchvision ``state_dict`` saved to disk loads as is
(``pretrained = "path/to/resnet18.pth"``; torchvision itself is not needed, and nothing is
downloaded). Without a checkpoint the network starts from random weights (training from scratch).

``stem = "imagenet"`` is the 7x7/2 convolution + max-pool of the original network (use it with
a pretrained checkpoint and ``image_size = 224`` as in the paper's code); ``stem = "cifar"`` is the
usual 3x3/1 convolution without max-pool for 32x32 inputs from scratch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .tasks import ClassificationTask, _check, register_task

#: per-channel statistics used to normalise the inputs
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck with expansion 4 (ResNet-50; stride on the 3x3 as torchvision)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
    """ResNet with torchvision's module names; returns log-probabilities (NLL loss)."""

    def __init__(self, depth: int = 18, num_classes: int = 10, stem: str = "cifar", width: int = 64,
                 image_size: int | None = None, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        block, counts = DEPTHS[depth]
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        planes, in_planes = width, width
        for i, n in enumerate(counts):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            planes *= 2
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        if self.image_size is not None and x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.log_softmax(self.fc(x), dim=1)


def load_pretrained(model: nn.Module, path: str) -> list[str]:
    """Load a (torchvision-named) state_dict from ``path``; tensors whose shape differs (e.g. a
    1000-class ``fc``) are skipped. Returns the names of the parameters left at their init."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = model.state_dict()
    usable = OrderedDict((k, v) for k, v in state.items() if k in own and own[k].shape == v.shape)
    if not usable:
        raise ValueError(f"pretrained checkpoint {path!r} shares no tensor (name and shape) with the model")
    model.load_state_dict(usable, strict=False)
    return sorted(k for k in own if k not in usable and k not in ("mean", "std"))


@register_task("cifar_resnet")
@dataclass
class CifarResNet(ClassificationTask):
    """CIFAR-10/100 with ResNet-18/34/50 (``depth``), log-softmax + NLL, batch 128.

    Keywords besides the classification ones (``dataset`` = ``cifar10`` | ``cifar100``,
    ``data_dir``, ``train_samples``, ``test_samples``): ``depth`` (18, 34, 50), ``stem``
    (``"cifar"`` | ``"imagenet"``), ``width`` (64; smaller for quick tests), ``image_size``
    (None: 32; the paper resizes to 224), ``pretrained`` (path to a torchvision-named
    state_dict, or none), ``augment`` (random horizontal flips, default true). ``normalize``
    defaults to false here: the model standardises its input with fixed CIFAR statistics (or
    ImageNet ones with a pretrained checkpoint).
    Layer names for ``train.layers``: ``fc`` (the paper: last layer analog) or blocks
    ``layer1`` .. ``layer4`` (every convolution inside becomes analog).
    """

    dataset: str = "cifar10"
    depth: int = 18
    stem: str = "cifar"
    width: int = 64
    image_size: int | None = None
    pretrained: str | None = None
    augment: bool = True
    normalize: bool = False  # the model normalises (CIFAR or ImageNet statistics) itself

    default_batch_size = 128
    eval_batch_size = 500

    def __post_init__(self):
        super().__post_init__()
        _check(self.dataset in ("cifar10", "cifar100"), f"task.dataset must be 'cifar10' or 'cifar100', got {self.dataset!r}")
        _check(self.depth in DEPTHS, f"task.depth must be one of {sorted(DEPTHS)}, got {self.depth!r}")
        _check(self.stem in ("cifar", "imagenet"), f"task.stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        _check(isinstance(self.width, int) and self.width >= 4, f"task.width must be an integer >= 4, got {self.width!r}")
        _check(self.image_size is None or (isinstance(self.image_size, int) and self.image_size >= 8),
               f"task.image_size must be an integer >= 8 or none, got {self.image_size!r}")

    def build_model(self, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            imagenet = self.pretrained is not None
            model = ResNet(self.depth, 100 if self.dataset == "cifar100" else 10, self.stem, self.width,
                           self.image_size, IMAGENET_MEAN if imagenet else CIFAR_MEAN,
                           IMAGENET_STD if imagenet else CIFAR_STD)
        if self.pretrained is not None:
            load_pretrained(model, self.pretrained)
        return model

    def train_batches(self, batch_size, generator):
        for x, y in super().train_batches(batch_size, generator):
            if self.augment:
                flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            yield x, y
