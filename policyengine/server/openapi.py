"""Print the service's OpenAPI schema (`make openapi` writes it to docs/openapi.json)."""

from __future__ import annotations

import json
import sys


def schema() -> dict:
    from .app import create_app
    from .config import ServerConfig

    return create_app(ServerConfig(policy="policies/default.policy")).openapi()  # no policy is loaded to build it


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(json.dumps(schema(), indent=2, ensure_ascii=False) + "\n")
