"""Prometheus text exposition (format 0.0.4) of the server's counters, gauges and histograms.

Hand-written (a few dozen lines) rather than a dependency: the server needs counters by label, two
gauges and latency/batch-size histograms, nothing more. All updates happen on the event loop thread.
"""

from __future__ import annotations

from collections import defaultdict

# latency buckets in seconds (Prometheus client defaults, extended to the request timeout range)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        self.sum += v
        self.n += 1
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [
            f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        lab = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{lab} {self.sum:.6f}", f"{name}_count{lab} {self.n}"]


class Metrics:
    """The server's metrics. ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(lambda: Histogram(LATENCY_BUCKETS))
        self.rejected: dict[str, int] = defaultdict(int)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.in_flight = 0
        self.queued = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self.latency[route].observe(seconds)

    def render(self) -> str:
        out = [
            "# HELP domainlm_requests_total HTTP requests by route and status code.",
            "# TYPE domainlm_requests_total counter",
        ]
        out += [
            f'domainlm_requests_total{{route="{r}",code="{c}"}} {n}'
            for (r, c), n in sorted(self.requests.items())
        ]
        out += [
            "# HELP domainlm_request_duration_seconds Request latency by route.",
            "# TYPE domainlm_request_duration_seconds histogram",
        ]
        for r, h in sorted(self.latency.items()):
            out += h.lines("domainlm_request_duration_seconds", f'route="{r}"')
        out += [
            "# HELP domainlm_rejected_total Requests refused before the model by reason.",
            "# TYPE domainlm_rejected_total counter",
        ]
        out += [f'domainlm_rejected_total{{reason="{k}"}} {n}' for k, n in sorted(self.rejected.items())]
        out += [
            "# HELP domainlm_batch_size Texts per model forward pass (micro-batching).",
            "# TYPE domainlm_batch_size histogram",
        ]
        out += self.batch_size.lines("domainlm_batch_size", "")
        out += [
            "# HELP domainlm_in_flight Requests being processed.",
            "# TYPE domainlm_in_flight gauge",
            f"domainlm_in_flight {self.in_flight}",
            "# HELP domainlm_queued Requests waiting for a processing slot.",
            "# TYPE domainlm_queued gauge",
            f"domainlm_queued {self.queued}",
        ]
        return "\n".join(out) + "\n"
