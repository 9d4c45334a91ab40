"""ResNet for 28x28x1 images (He et al. 2016, CIFAR variant: depth 6n+2), residual or plain.

Two views of the same network, sharing parameter names:
- `ResNet`, an ordinary `nn.Module` that trains one model (the reference, and the naive baseline);
- `BatchedResNet`, a pure function of stacked parameters ``{name: (M, *shape)}`` that runs M models
  at once: every convolution becomes one grouped convolution over M*C channels, so each model's
  numbers come from its own group and never mix with another model's.
BatchNorm always uses batch statistics (no running averages), as in training mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fused_bn
from .common import activation, activation_, classification_loss, compile_wanted, compiled

if TYPE_CHECKING:
    from nnfractal.config import Config

BN_EPS = 1e-5


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, plus the shortcut when `skip`, then act."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip: bool, act):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out, track_running_stats=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, track_running_stats=False)
        self.proj = None
        if skip and (stride != 1 or c_in != c_out):
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out, track_running_stats=False))
        self.skip = skip
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + (x if self.proj is None else self.proj(x))
        return self.act(out)


class ResNet(nn.Module):
    """ResNet-(6n+2) for (B, 1, 28, 28) images -> (B, n_classes) logits."""

    def __init__(self, depth: int = 20, c_hidden=(16, 32, 64), skip: bool = True,
                 nonlinearity: str = "relu", in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 >= 8, got {depth}")
        n = (depth - 2) // 6
        act = activation(nonlinearity)
        self.act = act
        self.conv1 = nn.Conv2d(in_channels, c_hidden[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_hidden[0], track_running_stats=False)
        stages, c_in = [], c_hidden[0]
        for s, c_out in enumerate(c_hidden):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride, skip, act))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(c_hidden[-1], n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


# ---- the batched functional form ------------------------------------------------------------

def _grouped_conv(x: Tensor, w: Tensor, stride: int) -> Tensor:
    """x (B, M*Cin, H, W), w (M, Cout, Cin, k, k) -> (B, M*Cout, H', W'), one group per model."""
    m, c_out, c_in, k, _ = w.shape
    return F.conv2d(x, w.reshape(m * c_out, c_in, k, k), stride=stride, padding=k // 2, groups=m)


def _conv_channels_last_out(x: Tensor, w: Tensor) -> Tensor:
    """x (B, Cin, H, W), w (Cout, Cin, k, k) -> (B, Cout, H, W) in channels_last: a stride-1
    'same' convolution as one matrix product (B*H*W, Cin*k*k) @ (Cin*k*k, Cout), whose rows are
    already in channels_last order. For the one-channel input layer, where F.conv2d writes NCHW
    and the layout copies of its output (forward) and gradient (backward) cost ~2% of a step."""
    b, _, hh, ww = x.shape
    k = w.shape[-1]
    cols = F.unfold(x, k, padding=k // 2).transpose(1, 2).reshape(b * hh * ww, -1)
    return (cols @ w.reshape(w.shape[0], -1).t()).view(b, hh, ww, -1).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class _Block:
    """One BasicBlock of the batched network: its parameter names, stride and shortcut."""
    prefix: str          # "layer2.0": its parameters are "layer2.0.conv1.weight", ...
    stride: int
    proj: bool           # a projection shortcut (1x1 conv + BN), where the shape changes

    def __getitem__(self, part: str) -> str:
        return f"{self.prefix}.{part}"


def _blocks(depth: int, c_hidden: tuple[int, ...], skip: bool) -> list[_Block]:
    """The blocks of `ResNet(depth, c_hidden, skip)` in order, by the same rule (as torchvision's
    `_make_layer`: stride 2 at the first block of every stage after the first)."""
    n = (depth - 2) // 6
    blocks, c_in = [], c_hidden[0]
    for s, c_out in enumerate(c_hidden):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            blocks.append(_Block(f"layer{s + 1}.{b}", stride, skip and (stride != 1 or c_in != c_out)))
            c_in = c_out
    return blocks


class BatchedResNet:
    """M ResNets at once, as a function of stacked parameters (names as in `ResNet`)."""

    task = "classification"

    def __init__(self, depth: int = 20, c_hidden=(16, 32, 64), skip: bool = True,
                 nonlinearity: str = "relu", channels_last: bool = True, compile_kernels: bool = False,
                 fused_bn_kernel: bool = True):
        self.depth, self.c_hidden, self.skip = depth, tuple(c_hidden), skip
        # torch.compile the forward pass (and so, through autograd, the backward pass). On CPU it
        # gained only 3% over channels_last eager and costs 1-2 min of compiling: off by default.
        self.compile_kernels = compile_kernels
        self._compiled = None
        self.nonlinearity = nonlinearity
        self.act = activation(nonlinearity)
        self.act_ = activation_(nonlinearity)
        self.channels_last = channels_last
        self.use_fused_bn = None if fused_bn_kernel else False   # decided at the first forward
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 >= 8, got {depth}")
        # Early exit may shrink a chunk only where that cannot change roundoff (see engine.py).
        self.shrink_is_exact = all(c % 16 == 0 for c in self.c_hidden)
        self.blocks = _blocks(depth, self.c_hidden, skip)       # composed once, used every step

    def init_params(self, seed: int) -> dict[str, Tensor]:
        """One model's initial parameters (float32), drawn from `seed`.

        Always drawn for the residual network, then the plain one drops the projections: both
        architectures start from exactly the same weights for every layer they share.
        """
        torch.manual_seed(seed)
        net = ResNet(self.depth, self.c_hidden, True, self.nonlinearity)
        return {k: v.detach().clone() for k, v in net.named_parameters()
                if self.skip or ".proj." not in k}

    @staticmethod
    def role(name: str) -> str:
        """Which learning rate a parameter takes in lr_vs_lr: input, hidden or output layer."""
        if name.startswith(("conv1.", "bn1.")):
            return "input"
        if name.startswith("fc."):
            return "output"
        return "hidden"

    def forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """p: {name: (M, *shape)}, x (B, 1, 28, 28) shared by all models -> logits (M, B, 10)."""
        if self.compile_kernels:
            if self._compiled is None:
                self._compiled = compiled(self._forward)
            return self._compiled(p, x)
        return self._forward(p, x)

    def _uses_fused_bn(self, h: Tensor) -> bool:
        """Whether BatchNorm + residual + ReLU run as one kernel (fused_bn.py): for float32
        channels_last ReLU networks on the CPU, where the C++ kernel can be built (it is built at
        the first such call). Not under torch.compile, which fuses these layers itself."""
        if (self.use_fused_bn is False or h.is_cuda or h.dtype != torch.float32 or not self.channels_last
                or self.nonlinearity != "relu" or self.compile_kernels):
            return False
        if self.use_fused_bn is None:
            self.use_fused_bn = fused_bn.available()
        return self.use_fused_bn and h.is_contiguous(memory_format=torch.channels_last)

    def _bn_act(self, h: Tensor, p: dict[str, Tensor], bn: str, relu: bool = True,
                residual: Tensor | None = None) -> Tensor:
        """act(BatchNorm(h) + residual) with the parameters of BatchNorm layer `bn`."""
        gamma, beta = p[f"{bn}.weight"].reshape(-1), p[f"{bn}.bias"].reshape(-1)
        if self._uses_fused_bn(h):
            return fused_bn.bn_act(h, gamma, beta, residual, relu, BN_EPS)
        out = F.batch_norm(h, None, None, gamma, beta, True, 0.0, BN_EPS)
        if residual is not None:
            out = out.add_(residual)
        return self.act_(out) if relu else out

    def _forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        m = p["conv1.weight"].shape[0]
        w = p["conv1.weight"]
        # The input is the same for every model, so the first layer is one ordinary convolution
        # with M*C0 output channels instead of a grouped one over M copies of the image.
        w = w.reshape(m * w.shape[1], *w.shape[2:])
        if x.is_cuda or not self.channels_last or x.dtype == torch.float64:
            h = F.conv2d(x, w, padding=1)
        else:
            # The CPU in float32: as a matrix product, so the output is channels_last already.
            h = _conv_channels_last_out(x, w)
        if self.channels_last and (h.is_cuda or h.dtype != torch.float64):
            # channels_last pays on GPUs, and on CPU in float32: oneDNN's grouped convolutions
            # with 16 channels per model ran 3x faster in it (forward and weight gradient,
            # 1.25x for the whole training step, measured on a 2-core Xeon). float64 stays in
            # NCHW: its grouped convolution has no channels_last kernel there (54x slower).
            h = h.contiguous(memory_format=torch.channels_last)    # a no-op after the product
        h = self._bn_act(h, p, "bn1")
        for blk in self.blocks:
            out = _grouped_conv(h, p[blk["conv1.weight"]], blk.stride)
            out = self._bn_act(out, p, blk["bn1"])
            out = _grouped_conv(out, p[blk["conv2.weight"]], 1)
            shortcut = None
            if self.skip:
                shortcut = h
                if blk.proj:
                    shortcut = _grouped_conv(h, p[blk["proj.0.weight"]], blk.stride)
                    shortcut = self._bn_act(shortcut, p, blk["proj.1"], relu=False)
            h = self._bn_act(out, p, blk["bn2"], residual=shortcut)
        b = h.shape[0]
        pooled = h.mean((2, 3)).view(b, m, -1).transpose(0, 1)          # (M, B, C)
        return torch.baddbmm(p["fc.bias"].unsqueeze(1), pooled, p["fc.weight"].transpose(1, 2))

    def loss(self, p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Mean softmax cross-entropy of each model on (x, y): (M,)."""
        return classification_loss(self.forward(p, x), y)

    def reference(self, params: dict[str, Tensor]) -> ResNet:
        """A single-model `ResNet` holding `params` (unstacked) - for tests and the naive loop."""
        net = ResNet(self.depth, self.c_hidden, self.skip, self.nonlinearity)
        net.load_state_dict(params, strict=True)
        return net


def build(cfg: Config) -> BatchedResNet:
    """The batched ResNet of `cfg` (depth, c_hidden, skip, nonlinearity, compile)."""
    return BatchedResNet(cfg.depth, cfg.c_hidden, cfg.skip, cfg.nonlinearity,
                         compile_kernels=compile_wanted(cfg))
