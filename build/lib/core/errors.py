"""Specific exceptions raised by `core`, each with a message a user can act on.

The edges translate them: exit code + message in the CLI, `st.error` in the console, HTTP status + JSON
detail in the API.
"""

from __future__ import annotations


class RakutenError(Exception):
    """Base class of every error `core` raises on purpose."""


class DataNotFoundError(RakutenError):
    """An expected input (challenge file, image folder, ingested table) does not exist."""


class DataFormatError(RakutenError):
    """An input exists but cannot be used as it is (fatal: nothing is written).

    `problem` is a short machine-readable code (e.g. `missing_column`, `misaligned_ids`), `path` the file.
    """

    def __init__(self, message: str, *, problem: str, path: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.path = path


class ImageDecodeError(RakutenError):
    """An image (file or upload) is missing, unreadable or not a picture PIL can decode.

    `source` names the image (a path, or `upload (N bytes)` for raw bytes).
    """

    advice = "Use a JPEG or PNG that opens in an image viewer (re-export or replace the file)."

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"Cannot read image {source}: {reason}. {self.advice}")
        self.source = source
        self.reason = reason


class UnsupportedImageError(ImageDecodeError):
    """The bytes are not an image of an accepted format (JPEG, PNG, WebP)."""

    advice = "Send a JPEG, PNG or WebP picture."


class ImageTooLargeError(ImageDecodeError):
    """An image's dimensions exceed the configured pixel limit (decompression bombs included)."""

    advice = "Resize it first: a product photo needs no more than a few megapixels."


class MissingExtraError(RakutenError):
    """An optional feature was asked for (in params.yaml or a setting) but its extra is not installed."""
