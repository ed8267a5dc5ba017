"""The memory-guided image de-raining network (MGID) and its real-time variant.

Architecture: paper Table I as settled by ``shared/spec/NETWORK.md``. One code path builds
both models from a :class:`ModelConfig`:

* ``mgid``: 64 channels everywhere, full-resolution input, ~0.81 M parameters.
* ``mgid-rt``: the same encoder / memory / decoder roles, narrower, working on a
  space-to-depth (pixel-unshuffle) input and predicting the rain layer through a
  pixel-shuffle output, so every convolution runs at half resolution or less.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rtderain.config import check_range
from rtderain.errors import RTDerainError
from rtderain.models.memory import RainMemory


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one de-raining network.

    Attributes:
        name: registry name (``mgid``, ``mgid-rt``).
        channels: width C of every encoder/decoder conv (Table I: 64).
        memory_items: number M of rain prototypes (paper: 20).
        levels: number of 2x max-pool stages in the encoder (Table I: 3).
        space_to_depth: pixel-unshuffle factor of the input and pixel-shuffle factor of the
            rain output (1 = full resolution as in the paper).
        norm: ``none`` (paper) or ``batch`` (authors' code: conv-BN-ReLU).
        rain_activation: ``none`` (paper) or ``tanh`` (authors' code) on the rain head.
        memory_seed: seed of the random initial memory items.
        luma: the network sees the frame's luma only and predicts a grey rain layer,
            subtracted from every colour channel alike (so chroma is untouched: grey rain
            changes Y alone, in any BT.601/BT.709 matrix). Such a network can also run on a
            decoder's Y plane directly (:meth:`MGID.forward_luma`).
    """

    name: str = "mgid"
    channels: int = 64
    memory_items: int = 20
    levels: int = 3
    space_to_depth: int = 1
    norm: Literal["none", "batch"] = "none"
    rain_activation: Literal["none", "tanh"] = "none"
    memory_seed: int = 0
    luma: bool = False

    def __post_init__(self) -> None:
        # Bounds far beyond any useful network, so a typo or a crafted file cannot ask for
        # gigabytes of weights.
        check_range("channels", self.channels, 1, 512)
        check_range("memory_items", self.memory_items, 1, 1024)
        check_range("levels", self.levels, 1, 6)
        check_range("space_to_depth", self.space_to_depth, 1, 8)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (pad, never resize)."""
        return self.space_to_depth * 2**self.levels


def _conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none")]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _double(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, norm), _conv(cout, cout, norm))


class MGID(nn.Module):
    """Encoder-decoder that predicts the rain layer, with a rain memory at the bottleneck.

    ``forward`` is the inference graph: one frame in, one frame out.

    Input and output: (N, 3, H, W) float in [-1, 1], RGB, H and W multiples of
    ``config.multiple``. Output is the background ``B̂ = clamp(I − R̂, −1, 1)``.

    ``weights_path`` is the checkpoint the weights came from
    (:func:`rtderain.models.checkpoint.load_model` sets it), None for an untrained network.
    """

    weights_path: Path | None = None

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, s, norm = config.channels, config.space_to_depth, config.norm
        self.planes = 1 if config.luma else 3
        cin = self.planes * s * s
        self.encoders = nn.ModuleList(
            [_double(cin if i == 0 else c, c, norm) for i in range(config.levels + 1)]
        )
        self.memory = RainMemory(config.memory_items, c, seed=config.memory_seed)
        self.ups = nn.ModuleList(
            [
                nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)
                for _ in range(config.levels)
            ]
        )
        # decoders[0] is D4 (bottleneck: concat(q, p̂)); decoders[i] fuses the skip of level i.
        self.decoders = nn.ModuleList([_double(2 * c, c, norm) for _ in range(config.levels + 1)])
        self.head = nn.Conv2d(c, self.planes * s * s, 3, padding=1)
        # Zero-initialised rain head: an untrained network is the identity (R̂ = 0).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return self.config.multiple

    def _rain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rain layer R̂ of ``x`` (the network's planes: RGB, or luma) and the query."""
        s = self.config.space_to_depth
        h = F.pixel_unshuffle(x, s) if s > 1 else x
        skips = []
        for i, enc in enumerate(self.encoders):
            h = enc(h)
            if i < self.config.levels:
                skips.append(h)
                h = F.max_pool2d(h, 2)
        query = h
        h = self.decoders[0](torch.cat([query, self.memory.read(query)], dim=1))
        for up, dec, skip in zip(self.ups, self.decoders[1:], reversed(skips), strict=True):
            h = dec(torch.cat([up(h), skip], dim=1))
        rain = self.head(h)
        if s > 1:
            rain = F.pixel_shuffle(rain, s)
        if self.config.rain_activation == "tanh":
            rain = torch.tanh(rain)
        return rain, query

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full training outputs.

        Returns a dict with ``rain`` R̂ and ``background`` B̂ (N, 3, H, W) and ``query``
        q (N, C, H/(s·2^L), W/(s·2^L)), the bottleneck map the memory reads. A ``luma``
        network's rain is grey: one plane, repeated over R, G and B.
        """
        if self.config.luma:
            rain, query = self._rain(luma(x))
            rain = rain.expand(-1, 3, -1, -1)
        else:
            rain, query = self._rain(x)
        background = torch.clamp(x - rain, -1.0, 1.0)
        return {"rain": rain, "background": background, "query": query}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)["background"]

    def forward_luma(self, y: torch.Tensor) -> torch.Tensor:
        """A ``luma`` network's rain layer of a luma plane: (N, 1, H, W) in [-1, 1] units
        (a decoder's Y plane, normalised), for graphs that never leave YUV."""
        if not self.config.luma:
            raise RTDerainError(f"model {self.config.name} is not a luma network")
        return self._rain(y)[0]


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of (N, 3, H, W) RGB in [-1, 1], as (N, 1, H, W) in [-1, 1] (the
    weights sum to one, so the range is kept: the quality metrics' Y is this weighting
    scaled to the limited range)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the memory items are a buffer and are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
