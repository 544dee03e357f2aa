"""Prometheus metrics, on a registry of the app's own (two apps in one process do not collide)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from crm.storage.group_commit import GroupCommit


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "crm_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "crm_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def watch_group_commits(self, commits: Sequence[GroupCommit[Any, Any]]) -> None:
        """Count the transactions `commits` write and the requests' writes they hold: the ratio
        of their rates is how many requests share a commit under the current load."""
        self.registry.register(_GroupCommits(commits))

    def render(self) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response


def route_name(request: web.Request) -> str:
    """The route's pattern (`/api/v1/clients/{id}`), never the raw path: labels stay few."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical or "unmatched"


class _GroupCommits(Collector):
    """The group commits' own counters, read when scraped (nothing to do per batch)."""

    def __init__(self, commits: Sequence[GroupCommit[Any, Any]]) -> None:
        self.commits = commits

    def collect(self) -> Iterator[Metric]:
        batches = CounterMetricFamily(
            "crm_group_commit_batches", "Transactions written by a group commit", labels=["name"]
        )
        items = CounterMetricFamily(
            "crm_group_commit_items", "Requests' writes in those transactions", labels=["name"]
        )
        for commit in self.commits:
            batches.add_metric([commit.name], commit.batches)
            items.add_metric([commit.name], commit.items)
        yield batches
        yield items
