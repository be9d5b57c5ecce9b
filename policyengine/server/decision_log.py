"""Decision log: one JSON line per decision, appended by a writer thread (group commit: write, flush and fsync
everything queued, then wait for more), rotated by size (`decisions.jsonl` -> `decisions.jsonl.1` ...).

A line holds what is needed to audit and to replay a decision: timestamp, request id, endpoint, policy name and
digest, model id, action, winning rule, reasons (rule, action, severity, category). The message text is written
only when configured (`log_text`); otherwise its sha256. With text, a line is also an input line for
`policyengine check --input FILE.jsonl` (keys `id`, `input`, `output`, `context`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import queue
import threading
from typing import Any, Mapping

from ..models import Decision

log = logging.getLogger("policyengine.server")
_STOP = object()


def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def decision_record(d: Decision, *, request_id: str, endpoint: str, item: Mapping[str, Any], log_text: bool,
                    index: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "id": request_id if index is None else f"{request_id}:{index}",
        "request_id": request_id,
        "endpoint": endpoint,
        "policy": {"name": d.policy.name, "version": d.policy.version, "digest": d.policy.digest},
        "model": d.model,
        "action": d.action,
        "rule": d.rule,
        "reasons": [{"rule": r.rule, "action": r.action, "severity": r.severity, "category": r.category}
                    for r in d.reasons],
    }
    if d.errors:
        rec["errors"] = [e.model_dump() for e in d.errors]
    for key in ("input", "output"):
        value = item.get(key)
        if value is None:
            continue
        if log_text:
            rec[key] = value
        else:
            rec[f"{key}_sha256"] = sha256_text(value)
    if log_text and item.get("context") is not None:
        rec["context"] = item["context"]
    return rec


def _dumps(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates in a logged text
        text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text


class DecisionLog:
    def __init__(self, path: str, *, max_bytes: int = 100 * 1024 * 1024, backups: int = 5, fsync: bool = True):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.written = 0
        self.dropped = 0
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - owned by the writer thread
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def append(self, record: Mapping[str, Any]) -> None:
        self._queue.put(record)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, fsync and close."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        if self.backups > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self._file = open(self.path, "ab")  # noqa: SIM115

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for rec in batch:
                    if rec is _STOP:
                        stop = True
                        continue
                    line = (_dumps(rec) + "\n").encode("utf-8")
                    if self.max_bytes and self._file.tell() + len(line) > self.max_bytes and self._file.tell() > 0:
                        self._file.flush()
                        if self.fsync:
                            os.fsync(self._file.fileno())
                        self._rotate()
                    self._file.write(line)
                    self.written += 1
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError as e:  # disk full, permissions: count and say so, never take the service down
                self.dropped += len(batch)
                log.error("decision log %s: write failed: %s", self.path, e)
        self._file.close()
