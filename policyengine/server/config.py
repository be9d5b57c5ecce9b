"""Server settings: one frozen value, passed to every worker process (as JSON in an environment variable)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PolicyEngineError

CONFIG_ENV = "POLICYENGINE_SERVE_CONFIG"


class ServerConfigError(PolicyEngineError, ValueError):
    """A server setting is unusable (message is shown to the user as is)."""


ConfigError = ServerConfigError  # the name before 0.2; policyengine exports only ServerConfigError


@dataclass(frozen=True)
class ServerConfig:
    policy: str  # the entry .policy file (resolve_policy_path turns a directory into one)
    watch: tuple[str, ...] = ()  # folders watched for changes (hot reload); empty = no file watching
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1  # torch / FAISS intra-op threads per worker
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    max_batch_items: int = 256
    max_microbatch: int = 64  # concurrent single checks evaluated together in one embedding batch
    decision_log: str | None = None
    log_text: bool = False  # write message text to the decision log (otherwise only its sha256)
    log_max_bytes: int = 100 * 1024 * 1024
    log_backups: int = 5
    log_fsync: bool = True
    reload_debounce_ms: int = 300
    graceful_timeout: float = 30.0
    # evaluation limits: the fields of policyengine.evaluator.Limits, same names and defaults (docs/hardening.md)
    max_input_chars: int = 2_000_000
    max_chunks: int = 256
    on_oversize: str = "block"  # block | truncate

    def limits(self):  # -> Limits; imported here so the config stays importable without the engine
        from dataclasses import fields

        from ..evaluator import Limits

        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServerConfig":
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise ConfigError(f"{CONFIG_ENV} is not set")
        data = json.loads(raw)
        for k in ("watch", "api_keys"):
            data[k] = tuple(data.get(k) or ())
        return cls(**data)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_policy_path(path: str) -> tuple[str, tuple[str, ...]]:
    """POLICY_OR_DIR -> (entry policy file, folders to watch). A directory serves its `default.policy`, or its
    only `*.policy` file."""
    p = Path(path)
    if p.is_dir():
        if (p / "default.policy").is_file():
            entry = p / "default.policy"
        else:
            found = sorted(p.glob("*.policy"))
            if len(found) != 1:
                names = ", ".join(f.name for f in found) or "none"
                raise ConfigError(f"{path}: a directory must hold default.policy or exactly one *.policy file "
                                  f"(found: {names})")
            entry = found[0]
        return str(entry), (str(p.resolve()),)
    if not p.exists():
        raise ConfigError(f"{path}: no such policy file or directory")
    return str(p), (str(p.resolve().parent),)


def default_api_keys() -> tuple[str, ...]:
    """Keys from $POLICYENGINE_API_KEYS (comma-separated)."""
    raw = os.environ.get("POLICYENGINE_API_KEYS", "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())


__all__ = ["ServerConfig", "ConfigError", "is_loopback", "resolve_policy_path", "default_api_keys", "CONFIG_ENV"]
