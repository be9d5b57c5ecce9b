"""Prometheus metrics (prometheus-client). One registry per app; with several workers, prometheus-client's
multiprocess mode ($PROMETHEUS_MULTIPROC_DIR, set by `policyengine serve --workers N`) aggregates all workers."""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("policyengine_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("policyengine_request_seconds", "HTTP request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("policyengine_decisions", "Decisions by action and winning rule",
                                 ["action", "rule"], registry=r)
        self.model_seconds = Histogram("policyengine_model_seconds",
                                       "Time in the engine (embedding + evaluation) per evaluation batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("policyengine_batch_size", "Messages evaluated together in one engine call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.reloads = Counter("policyengine_reloads", "Policy (re)loads by result (loaded, unchanged, error)",
                               ["result"], registry=r)
        self.ready = Gauge("policyengine_ready", "1 once a policy is compiled and its model loaded",
                           registry=r, multiprocess_mode="livemin")
        self.policy_info = Gauge("policyengine_policy_info", "The policy in service (value 1)",
                                 ["name", "digest"], registry=r, multiprocess_mode="liveall")

    def set_policy(self, old: Any, new: Any) -> None:
        if old is not None:
            self.policy_info.labels(old.policy.name, old.policy.digest).set(0)
        self.policy_info.labels(new.policy.name, new.policy.digest).set(1)
        self.ready.set(1)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
