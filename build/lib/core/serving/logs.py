"""Request ids in every log line: a context variable set per request and a filter that reads it."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, Final

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr with the request id in each line (the service's entry point calls this)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """`logging.dictConfig` for uvicorn (applied in every worker process): our format with request ids;
    uvicorn's own access log is off — the service writes one line per request itself."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "core.serving.logs.RequestIdFilter"}},
        "formatters": {"default": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.access": {"level": "WARNING"},
        },
    }
