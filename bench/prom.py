"""The app's own Prometheus metrics, scraped before and after a load step: counters and histograms
as differences over the step, quantiles from a histogram's bucket differences.

The figures come from the app's metrics endpoint rather than an extra ARI observer, which would
cost Asterisk capacity and change what is measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) → value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of `name` over the series whose labels include `labels`."""
    wanted = set((labels or {}).items())
    return sum(value for (sample, pairs), value in samples.items() if sample == name and wanted <= set(pairs))


def delta(before: Samples, after: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    return total(after, name, labels) - total(before, name, labels)


@dataclass(frozen=True)
class Quantiles:
    """A histogram's observations over a step: how many, and p50/p99 in milliseconds (None: none)."""

    count: int
    p50_ms: float | None
    p99_ms: float | None


def bucket_deltas(before: Samples, after: Samples, histogram: str,
                  labels: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
    """(upper bound in seconds, cumulative count) of `histogram`'s buckets over the step, summed over
    the series matching `labels`, by increasing bound (+Inf last)."""
    bounds: dict[float, float] = {}
    wanted = set((labels or {}).items())
    name = histogram + "_bucket"
    for snapshot, sign in ((after, 1.0), (before, -1.0)):
        for (sample, pairs), value in snapshot.items():
            if sample != name or not wanted <= set(pairs):
                continue
            le = float(dict(pairs)["le"])
            bounds[le] = bounds.get(le, 0.0) + sign * value
    return sorted(bounds.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile in seconds, interpolated linearly inside its bucket (Prometheus'
    histogram_quantile). Past the last finite bound, that bound: the histogram knows no more."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def quantiles(before: Samples, after: Samples, histogram: str, labels: Mapping[str, str] | None = None) -> Quantiles:
    buckets = bucket_deltas(before, after, histogram, labels)
    count = int(buckets[-1][1]) if buckets else 0

    def ms(q: float) -> float | None:
        value = quantile(buckets, q)
        return None if value is None else round(value * 1000, 2)

    return Quantiles(count=count, p50_ms=ms(0.5), p99_ms=ms(0.99))
