"""`make bench`'s figures: each load step's measurements, the capacity found from them, and the
table that sets every figure beside its goal and says whether it is met (and by how much not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

NATIVE = "native"
PRODUCT = "product"


@dataclass(frozen=True)
class Latency:
    """p50/p99 in milliseconds of a latency over one step (None: nothing observed)."""

    count: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class Step:
    """One load step: `rate` calls/s for `seconds` in one mode (native dialplan or the product)."""

    mode: str
    rate: int
    seconds: float
    placed: int = 0
    sipp_failed: int = 0
    journey_failed: int = 0  # product only: calls whose journey is missing or lost its personalisation
    failure_reasons: dict[str, int] = field(default_factory=dict)
    asterisk_cpu_ms: float = 0.0
    app_cpu_ms: float = 0.0  # product only
    ari_requests: int = 0  # product only
    prompt_steps: int = 0  # product only: menu nodes with a prompt the calls went through
    # product only: first_prompt, dtmf_prompt, lookup, journey_write
    latency: dict[str, Latency] = field(default_factory=dict)
    journey_backlog_max: float = 0.0
    journey_drain_s: float | None = None  # after the last call: until every journey was complete

    @property
    def failed(self) -> int:
        return self.sipp_failed + self.journey_failed

    @property
    def clean(self) -> bool:
        return self.placed > 0 and self.failed == 0

    def per_call(self, value: float) -> float | None:
        return round(value / self.placed, 2) if self.placed else None

    @property
    def app_cpu_ms_per_request(self) -> float | None:
        return round(self.app_cpu_ms / self.ari_requests, 3) if self.ari_requests else None

    @property
    def requests_per_prompt_step(self) -> float | None:
        return round(self.ari_requests / self.prompt_steps, 2) if self.prompt_steps else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(failed=self.failed, clean=self.clean, asterisk_cpu_ms_per_call=self.per_call(self.asterisk_cpu_ms),
                    app_cpu_ms_per_call=self.per_call(self.app_cpu_ms) if self.mode == PRODUCT else None,
                    app_cpu_ms_per_ari_request=self.app_cpu_ms_per_request,
                    ari_requests_per_prompt_step=self.requests_per_prompt_step)
        return data


def highest_clean_rate(steps: Sequence[Step], mode: str) -> int | None:
    """The highest rate of `mode` with 0 failed calls, below which no step failed: a clean step
    above a failed one is luck, not capacity."""
    best: int | None = None
    for step in sorted((s for s in steps if s.mode == mode), key=lambda s: s.rate):
        if not step.clean:
            break
        best = step.rate
    return best


@dataclass(frozen=True)
class Goal:
    """One line of the table: a figure, its goal and whether it is met."""

    figure: str
    measured: str
    goal: str
    met: bool | None  # None: not measured
    note: str = ""


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:g} ms"


def _worst_step(figure: str, values: list[float | None], limit: float, unit: str = "") -> Goal:
    """A figure whose goal is an upper `limit`, judged on its worst measured step."""
    measured = [v for v in values if v is not None]
    if not measured:
        return Goal(figure, "not measured", f"≤ {limit:g}{unit}", None)
    worst = max(measured)
    return Goal(f"{figure} (worst step)", f"{worst:g}{unit}", f"≤ {limit:g}{unit}", worst <= limit,
                _missed_by(worst, limit, higher_is_better=False))


def _missed_by(value: float, limit: float, *, higher_is_better: bool) -> str:
    """'' when met, else how far off, e.g. 'missed by 0.12 (24 %)'."""
    gap = (limit - value) if higher_is_better else (value - limit)
    if gap <= 0:
        return ""
    return f"missed by {gap:.3g} ({100 * gap / limit:.0f} %)" if limit else f"missed by {gap:.3g}"


def goals(steps: Sequence[Step], *, scale: dict[str, Any] | None, reload: dict[str, Any] | None,
          latency_rate: int = 60) -> list[Goal]:
    """Every goal of issue 13's bench, judged on this run's figures."""
    rows: list[Goal] = []
    native, product = highest_clean_rate(steps, NATIVE), highest_clean_rate(steps, PRODUCT)
    rows.append(Goal("P1 native dialplan: highest clean rate", f"{native} calls/s" if native else "none clean",
                     "anchor", None if native is None else True))
    rows.append(Goal("P1 product: highest clean rate", f"{product} calls/s" if product else "none clean",
                     "≥ 0.9 × native", None))
    if native and product is not None:
        ratio = product / native
        tried = max(s.rate for s in steps if s.mode == NATIVE)
        ceiling = f"native clean at the highest rate tried ({tried}/s): its limit, and the ratio, unknown above" \
            if native == tried else ""
        rows.append(Goal("P1 capacity ratio product / native", f"{ratio:.2f}×", "≥ 0.9×", ratio >= 0.9,
                         "; ".join(x for x in (_missed_by(ratio, 0.9, higher_is_better=True), ceiling) if x)))
    else:
        rows.append(Goal("P1 capacity ratio product / native", "not measured", "≥ 0.9×", None,
                         "no clean native step" if not native else ""))
    product_steps = [s for s in steps if s.mode == PRODUCT and s.placed]
    rows.append(_worst_step("P2 app CPU per ARI request", [s.app_cpu_ms_per_request for s in product_steps],
                            0.5, " ms"))
    rows.append(_worst_step("P2 ARI requests per menu step", [s.requests_per_prompt_step for s in product_steps], 3))
    rows += _asterisk_cost(steps)
    at_rate = [s for s in product_steps if s.rate == latency_rate]
    first = at_rate[0].latency.get("first_prompt") if at_rate else None
    if first is not None and first.p99_ms is not None:
        rows.append(Goal(f"P3 StasisStart → first prompt p99 at {latency_rate} calls/s", _ms(first.p99_ms),
                         "≤ 20 ms", first.p99_ms <= 20, _missed_by(first.p99_ms, 20, higher_is_better=False)))
    else:
        rows.append(Goal(f"P3 StasisStart → first prompt p99 at {latency_rate} calls/s", "not measured",
                         "≤ 20 ms", None, f"no product step at {latency_rate} calls/s" if not at_rate else ""))
    rows += _scale_goals(scale)
    rows += _reload_goals(reload)
    return rows


def _asterisk_cost(steps: Sequence[Step]) -> list[Goal]:
    """What ARI costs Asterisk: its CPU per call in the product beside native at the same rate (the
    highest rate both ran), and the app's own CPU per call there. No fixed goal: as small as the
    request count allows."""
    native = {s.rate: s for s in steps if s.mode == NATIVE and s.placed}
    product = {s.rate: s for s in steps if s.mode == PRODUCT and s.placed}
    common = sorted(set(native) & set(product))
    if not common:
        return [Goal("P2 Asterisk CPU per call, product vs native", "not measured", "as small as ARI allows", None)]
    rate = common[-1]
    ours, theirs = product[rate].per_call(product[rate].asterisk_cpu_ms), native[rate].per_call(native[rate].asterisk_cpu_ms)
    assert ours is not None and theirs is not None
    return [Goal(f"P2 Asterisk CPU per call at {rate} calls/s, product vs native", f"{ours:g} vs {theirs:g} ms"
                 f" ({ours - theirs:+.2f} ms)", "as small as ARI allows", None,
                 f"app CPU {product[rate].per_call(product[rate].app_cpu_ms)} ms per call")]


def _scale_goals(scale: dict[str, Any] | None) -> list[Goal]:
    if not scale or scale.get("memory_per_call_kb") is None:
        return [Goal("P4 memory per call (2,000 calls, one process)", "not measured", "≤ 50 KB", None,
                     (scale or {}).get("error", "bench.scale not available"))]
    kb = float(scale["memory_per_call_kb"])
    lag = f"loop lag p50/p99 {scale.get('loop_lag_p50_ms')}/{scale.get('loop_lag_p99_ms')} ms"
    failed = f"{scale['failed']} calls failed in bench.scale" if scale.get("failed") else ""
    return [Goal(f"P4 memory per call ({scale.get('calls')} calls, one process)", f"{kb:g} KB", "≤ 50 KB", kb <= 50,
                 "; ".join(x for x in (_missed_by(kb, 50, higher_is_better=False), lag, failed) if x))]


def _reload_goals(reload: dict[str, Any] | None) -> list[Goal]:
    if not reload or reload.get("placed") is None:
        return [Goal("P5 publish under load: failed calls", "not measured", "0", None,
                     (reload or {}).get("error", ""))]
    failed = int(reload["failed"])
    rows = [Goal(f"P5 publish under load at {reload['rate']} calls/s: failed calls",
                 f"{failed} of {reload['placed']}", "0", failed == 0)]
    switch = reload.get("switch_s")
    if switch is None:
        rows.append(Goal("P5 publish → first call on the new version", "no call used it", "≤ 1 s", False))
    else:
        rows.append(Goal("P5 publish → first call on the new version", f"{switch:.3f} s", "≤ 1 s", switch <= 1.0,
                         _missed_by(switch, 1.0, higher_is_better=False)))
    return rows


def _mark(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "–"}[met]


def goals_markdown(rows: Sequence[Goal]) -> str:
    lines = ["| Figure | Measured | Goal | Met | Note |", "|---|---|---|---|---|"]
    lines += [f"| {g.figure} | {g.measured} | {g.goal} | {_mark(g.met)} | {g.note} |" for g in rows]
    return "\n".join(lines)


def steps_markdown(steps: Sequence[Step]) -> str:
    """Every step's figures side by side: the native anchor and the product at each rate."""
    lines = ["| Mode | Rate /s | Calls | Failed (SIPp + journey) | Asterisk CPU ms/call | App CPU ms/call"
             " | App CPU ms/ARI req | ARI req/menu step | First prompt p50/p99 | DTMF → prompt p50/p99"
             " | Lookup p50/p99 | Journey write lag p50/p99 | Journey backlog max / drain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in steps:
        def lat(name: str, step: Step = s) -> str:
            value = step.latency.get(name)
            return "–" if value is None or value.p50_ms is None else f"{value.p50_ms:g}/{value.p99_ms:g} ms"

        product = s.mode == PRODUCT
        failed = f"{s.failed} ({s.sipp_failed} + {s.journey_failed})" if product else str(s.failed)
        if s.failure_reasons:
            failed += " " + ", ".join(f"{k}={v}" for k, v in sorted(s.failure_reasons.items()))
        drain = "–" if s.journey_drain_s is None else f"{s.journey_backlog_max:g} / {s.journey_drain_s:.1f} s"
        lines.append(" | ".join([
            f"| {s.mode}", str(s.rate), str(s.placed), failed, str(s.per_call(s.asterisk_cpu_ms)),
            str(s.per_call(s.app_cpu_ms)) if product else "–", str(s.app_cpu_ms_per_request or "–"),
            str(s.requests_per_prompt_step or "–"), lat("first_prompt") if product else "–",
            lat("dtmf_prompt") if product else "–", lat("lookup") if product else "–",
            lat("journey_write") if product else "–", drain if product else "–"]) + " |")
    return "\n".join(lines)
