"""`hotline menus preview` and `hotline simulate`: the live engine on a simulated channel."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from agi_app.admin import Refused
from agi_app.admin.calendar import local_time
from agi_app.admin.cost import GENERIC, PERSONAS, cost_for_caller, cost_for_persona
from agi_app.admin.designer import PERSONA_CALLER, load_design, persona_handler
from agi_app.admin.simulate import preview as run_preview
from agi_app.admin.simulate import simulate as run_simulate
from agi_app.calendar.localtime import LocalTimeError, parse_local
from agi_app.calendar.model import DEFAULT_TIMEZONE
from agi_app.cli.common import EXIT_CONFIG, dsn, echo_json, fail, prompts_folder, run, settings
from agi_app.config import Settings
from agi_app.db.pool import connection, create_pool
from agi_app.engine.call import HotlineFlow
from agi_app.engine.lifecycle import Fallback
from agi_app.flows.cost import ServiceCost
from agi_app.flows.loader import FlowFileError
from agi_app.flows.model import Node
from agi_app.media.voice import load_prompt_texts
from agi_app.serve.app import StartupError, build_services, call_handler, initial_flows, media_resolver


def parse_at(ctx: click.Context, text: str | None, line: str, *, offline: bool = False) -> datetime:
    """--at as the line's callers mean it: read in the line's calendar zone (the one rule of
    agi_app/calendar/localtime.py, shared with `calendar status` and `emergency --until`); offline,
    in the default calendar's zone (the designer's calendar has no rules of its own)."""
    if offline:
        zone = ZoneInfo(DEFAULT_TIMEZONE)
        try:
            return parse_local(text, zone) if text else datetime.now(zone)
        except LocalTimeError as exc:
            fail(f"--at: {exc}")

    async def main() -> datetime:
        async with connection(dsn(ctx)) as conn:
            return await local_time(conn, text or None, line)

    try:
        return run(main())
    except Refused as exc:
        fail(f"--at: {exc}")


def needs_database(caller: str | None, flows_file: Path | None) -> bool:
    """Only a real caller's lookup and the published versions need PostgreSQL."""
    return caller is not None or flows_file is None


@asynccontextmanager
async def designer_handler(s: Settings, flows_file: Path, *, segment: str, line: str,
                           at: datetime) -> AsyncIterator[HotlineFlow]:
    """The live call handler over a flow file for persona `segment`, with neither Asterisk nor
    PostgreSQL (agi_app/admin/designer.py)."""
    services = build_services()
    try:
        flows = load_design(flows_file, services)
    except FlowFileError as exc:
        fail(f"{flows_file} is invalid:\n{exc}")
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as scratch:
        s = s.with_overrides(sounds_root=s.sounds_root or scratch)
        yield persona_handler(flows, segment=segment, line=line, at=at, media=media_resolver(s),
                              services=services, budget_s=s.call_start_budget_s)


@asynccontextmanager
async def offline_handler(s: Settings, flows_file: Path | None) -> AsyncIterator[HotlineFlow]:
    """The live call handler over the real database, without Asterisk."""
    pool = await create_pool(s.dsn, budget_s=s.db_budget_s)
    services = build_services()
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as scratch:
        s = s.with_overrides(flows_file=str(flows_file) if flows_file else None,
                             sounds_root=s.sounds_root or scratch)
        try:
            flows = await initial_flows(s, pool, services)
        except StartupError as exc:
            await pool.close()
            fail(str(exc), EXIT_CONFIG)
        try:
            yield call_handler(s, pool, lambda: flows, services)
        finally:
            await pool.close()


def transcript(prompts: Path) -> dict[str, str]:
    """What each recorded prompt says, to show next to its media URI."""
    texts = load_prompt_texts(prompts / "prompts.yaml")
    return {f"sound:hotline/{lang}/{pid}": text for pid, by_lang in texts.items()
            for lang, text in by_lang.items() if text}


def describe(uri: str, said: dict[str, str]) -> str:
    if uri.startswith("sound:hotline-tts/"):
        return f"{uri}  (generated speech)"
    return f"{uri}  {said.get(uri, '')}".rstrip()


CALLER = click.option("--caller", help="Calling number, any format (looked up: needs the database).")
SEGMENT = click.option("--segment", type=click.Choice(PERSONAS),
                       help="Call as a persona instead: a segment, bill_due, or generic (unknown caller).")
LINE = click.option("--line", default="95000", show_default=True, help="Dialled hotline number.")
AT = click.option("--at", "at_text", help="Pretend the call happens at this local time, e.g. '2026-12-25 10:00'.")
FLOWS = click.option("--file", "flows_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Use this flow file instead of the active published version (with a persona:"
                          " no database, open calendar, no emergency).")


def caller_or_segment(caller: str | None, segment: str | None, flows_file: Path | None) -> str:
    """The persona to call as, '' for a real caller; exit 1 unless exactly one is given, and a
    persona needs --file (published versions are read from the database with --caller)."""
    if (caller is None) == (segment is None):
        fail("give either --caller NUMBER or --segment PERSONA")
    if segment is not None and flows_file is None:
        fail("--segment rehearses a flow file: add --file FILE")
    return segment or ""


def who_and_when(ctx: click.Context, caller: str | None, segment: str | None, line: str, at_text: str | None,
                 flows_file: Path | None) -> tuple[str, str, datetime]:
    """The persona ('' for a real caller), the number calling and the moment of a rehearsed call;
    exits before anything runs on a bad choice, a bad --at or (when one is needed) no database."""
    persona = caller_or_segment(caller, segment, flows_file)
    offline = not needs_database(None if persona else caller, flows_file)
    at = parse_at(ctx, at_text, line, offline=offline)
    if not offline:
        dsn(ctx)
    return persona, caller or PERSONA_CALLER, at


@asynccontextmanager
async def call_handler_for(ctx: click.Context, *, persona: str, flows_file: Path | None, line: str,
                           at: datetime) -> AsyncIterator[HotlineFlow]:
    """A persona's rehearsal of a flow file (no database), else the handler over the database."""
    if persona and flows_file is not None:
        async with designer_handler(settings(ctx), flows_file, segment=persona, line=line, at=at) as handler:
            yield handler
    else:
        async with offline_handler(settings(ctx), flows_file) as handler:
            yield handler


@click.command("preview")
@CALLER
@SEGMENT
@LINE
@AT
@FLOWS
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def preview(ctx: click.Context, caller: str | None, segment: str | None, line: str, at_text: str | None,
            flows_file: Path | None, as_json: bool) -> None:
    """Exactly what CALLER (or a --segment persona) hears on LINE up to the first menu, and that
    menu's options."""
    persona, caller, at = who_and_when(ctx, caller, segment, line, at_text, flows_file)

    async def main() -> dict[str, object]:
        async with call_handler_for(ctx, persona=persona, flows_file=flows_file, line=line, at=at) as handler:
            return (await run_preview(handler, caller=caller, line=line, at=at,
                                      fallback=Fallback.from_settings(settings(ctx)))).as_json()

    result = run(main())
    if as_json:
        echo_json(result)
        return
    said = transcript(prompts_folder(ctx))
    click.echo(f"caller {segment or caller} on line {line} at {at:%Y-%m-%d %H:%M %Z}: customer={result['customer_id'] or '-'} "
               f"segment={result['segment'] or '-'} language={result['language']} "
               f"menu {'v' + str(result['menu_version']) if result['menu_version'] else 'from ' + str(flows_file)}")
    click.echo(f"path: {' > '.join(result['path'])}")  # type: ignore[arg-type]
    for uri in result["media"]:  # type: ignore[attr-defined]
        click.echo(f"  ▶ {describe(uri, said)}")
    if result["menu"]:
        click.echo(f"menu {result['menu']}: " + ", ".join(f"{o['key']} {o['label']}" for o in result["options"]))  # type: ignore[attr-defined]
    else:
        click.echo(f"no menu: the call {result['ended']}")


@click.command("simulate")
@CALLER
@SEGMENT
@LINE
@AT
@FLOWS
@click.option("--digits", default="", help="Keys typed ahead at the start (then read from the terminal).")
@click.pass_context
def simulate(ctx: click.Context, caller: str | None, segment: str | None, line: str, at_text: str | None,
             flows_file: Path | None, digits: str) -> None:
    """Walk the flow in the terminal: type digits, see what is played, where you end up.

    Type keys and Enter (e.g. `1` or `1234#`); `h` hangs up. Timeouts run in real time.
    `--file F --segment S` needs no database."""
    persona, caller, at = who_and_when(ctx, caller, segment, line, at_text, flows_file)
    said = transcript(prompts_folder(ctx))

    def on_play(media: Sequence[str]) -> None:
        for uri in media:
            click.echo(f"  ▶ {describe(uri, said)}")

    def on_menu(node: Node, options: list[tuple[str, str]]) -> None:
        click.echo(f"[menu {node.id}] " + ", ".join(f"{k}: {label}" for k, label in options))

    async def main() -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if digits:
            queue.put_nowait(digits)
        reader = asyncio.create_task(_read_keys(queue))
        try:
            async with call_handler_for(ctx, persona=persona, flows_file=flows_file, line=line,
                                        at=at) as handler:
                record, channel = await run_simulate(handler, caller=caller, line=line, at=at, on_play=on_play,
                                                     on_menu=on_menu, digits=queue,
                                                     fallback=Fallback.from_settings(settings(ctx)))
        finally:
            reader.cancel()
        where = f" → {channel.continued_to[0]}/{channel.continued_to[1]}" if channel.continued_to else ""
        click.echo(f"call ended: {record.outcome}{where}; path {' > '.join(record.path)}")

    run(main())


async def _read_keys(queue: asyncio.Queue[str | None]) -> None:
    """Lines from the terminal, read in a thread so the event loop (and the call's timers) run on."""
    if not sys.stdin.isatty():
        return
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip().lower() == "h":
            await queue.put(None)
            return
        await queue.put("".join(c for c in line if c in "0123456789*#"))


@click.command("cost")
@click.option("--caller", help="One caller (any number format); default: every persona side by side.")
@click.option("--segment", type=click.Choice(PERSONAS), help="One persona: a segment, bill_due, or generic (unknown).")
@LINE
@AT
@FLOWS
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cost(ctx: click.Context, caller: str | None, segment: str | None, line: str, at_text: str | None,
         flows_file: Path | None, as_json: bool) -> None:
    """Time to service: keys, seconds of prompt audio before the key is announced, and menu depth,
    for every service a caller can reach (measured from the rendered prompts' real durations)."""
    offline = not needs_database(caller, flows_file)
    at = parse_at(ctx, at_text, line, offline=offline)
    if not offline:
        dsn(ctx)
    sounds = prompts_folder(ctx)

    async def main() -> dict[str, list[ServiceCost]]:
        async with call_handler_for(ctx, persona=GENERIC if offline else "", flows_file=flows_file, line=line,
                                    at=at) as handler:
            if caller:
                return {caller: await cost_for_caller(handler, caller=caller, line=line, at=at, sounds_dir=sounds)}
            names = [segment] if segment else list(PERSONAS)
            return {n: await cost_for_persona(handler, name=n, line=line, at=at, sounds_dir=sounds)
                    for n in names}

    results = run(main())
    if as_json:
        if len(results) == 1:
            echo_json([c.as_json() for c in next(iter(results.values()))])
        else:
            echo_json({name: [c.as_json() for c in costs] for name, costs in results.items()})
        return
    click.echo(render_cost_table(results, line))


def render_cost_table(results: dict[str, list[ServiceCost]], line: str) -> str:
    """Services down, variants across: `seconds s [keys]`; then each variant's top service vs generic."""
    services = sorted({c.service for costs in results.values() for c in costs})
    by = {name: {c.service: c for c in costs} for name, costs in results.items()}
    width = max(14, *(len(n) + 2 for n in results))
    out = [f"time to service on line {line} (seconds of prompts before the key is announced [keys])",
           "service".ljust(12) + "".join(name.rjust(width) for name in results)]
    for service in services:
        cells = []
        for name in results:
            c = by[name].get(service)
            cells.append((f"{c.seconds:.1f}s [{c.keys or '-'}]" if c else "—").rjust(width))
        out.append(service.ljust(12) + "".join(cells))
    generic = by.get(GENERIC)
    if generic is not None and len(results) > 1:
        out.append("")
        for name, costs in results.items():
            if name == GENERIC or not costs:
                continue
            top = costs[0]
            base = generic.get(top.service)
            versus = f"generic {base.seconds:.1f}s [{base.keys or '-'}]" if base else "not offered to generic callers"
            out.append(f"{name}: top service {top.service} in {top.seconds:.1f}s [{top.keys or '-'}], depth "
                       f"{top.depth} — {versus}")
    return "\n".join(out)
