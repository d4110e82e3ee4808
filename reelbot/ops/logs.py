"""Logging set-up, once, at the edge: plain text or JSON lines (LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import time

# Context that key log lines carry via ``extra=``, so operators can filter by task.
CONTEXT_FIELDS = ("task_id", "provider", "guild_id", "role")


def task_context(task: object) -> dict[str, object]:
    return {
        "task_id": getattr(task, "id", None),
        "provider": getattr(task, "provider", None),
        "guild_id": getattr(task, "guild_id", None),
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text", *, role: str | None = None) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
    if role is not None:
        # Every line says which process wrote it, in a deployment of several.
        def add_role(record: logging.LogRecord) -> bool:
            record.role = role
            return True

        handler.addFilter(add_role)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py's gateway chatter at INFO is noise for operators.
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.WARNING))
