"""Prometheus metrics of `hotline serve`: what the calls do, how fast the peers answer, what is connected.

An adapter beside ari/db: the engine never imports it. Calls are observed through the journey sink
(`journey.MeteredJourneySink`), the peers through the hooks their libraries offer (`hooks`:
aiohttp's request tracing, asyncpg's query logger, a timed directory lookup), and live state is
read when Prometheus scrapes (`metrics.HotlineMetrics.watch_*`). `endpoint.MetricsEndpoint` serves
the text format on HOTLINE_METRICS_LISTEN.
"""
