"""`hotline`: the administrators' command line."""

from __future__ import annotations

import click

from agi_app.cli import (
    accounts,
    adapt,
    agents,
    alerts,
    calendar,
    callbacks,
    calls,
    campaigns,
    complaints,
    customers,
    db,
    kpi,
    menus,
    monitor,
    operations,
    qa,
    report,
    serve,
    simulate,
)
from agi_app.cli.common import EXIT_CONFIG, fail
from agi_app.config import ConfigError, Settings, dsn_has_password, redact_dsn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--dsn", envvar=None, help="PostgreSQL DSN, without a password [env HOTLINE_DSN].")
@click.option("--ari-url", help="ARI base URL [env HOTLINE_ARI_URL, default http://127.0.0.1:8088].")
@click.option("--ari-user", help="ARI user [env HOTLINE_ARI_USER].")
@click.option("--ari-app", help="Stasis application name [env HOTLINE_ARI_APP, default hotline].")
@click.option("--log-level", help="DEBUG, INFO, WARNING [env HOTLINE_LOG_LEVEL].")
@click.version_option(package_name="hotline")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, ari_url: str | None, ari_user: str | None,
        ari_app: str | None, log_level: str | None) -> None:
    """Demo Bank hotline IVR: menus, customers, calls and the ARI call server.

    Settings come from HOTLINE_* environment variables (see README), from .run/hotline.env when
    the local sandbox is up, and from the options above. Passwords never come from the command line
    (process lists show it): the ARI password from HOTLINE_ARI_PASSWORD, the database password from
    HOTLINE_DSN, the file HOTLINE_DB_PASSWORD_FILE names, or PGPASSWORD.

    \b
    Exit codes: 0 ok · 1 invalid input · 2 configuration missing · 3 PostgreSQL/Asterisk unreachable
    · 4, 5 `hotline serve` stopped after handing its calls to the dialplan (see its --help)
    """
    if dsn and dsn_has_password(dsn):
        fail(f"--dsn carries a password, which any user can read in the process list: give the DSN without"
             f" it ({redact_dsn(dsn)}) and put the password in HOTLINE_DSN, in a file named by"
             f" HOTLINE_DB_PASSWORD_FILE, or in PGPASSWORD", EXIT_CONFIG)
    try:
        settings = Settings.load(dsn=dsn, ari_url=ari_url, ari_user=ari_user, ari_app=ari_app,
                                 log_level=log_level)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    ctx.ensure_object(dict)["settings"] = settings


cli.add_command(db.db)
cli.add_command(customers.customers)
cli.add_command(accounts.accounts)
cli.add_command(calls.calls)
cli.add_command(callbacks.callbacks)
cli.add_command(campaigns.campaigns)
cli.add_command(kpi.kpi)
cli.add_command(monitor.monitor)
cli.add_command(report.report)
cli.add_command(complaints.complaints)
cli.add_command(qa.qa)
cli.add_command(serve.serve)
cli.add_command(calendar.calendar)
cli.add_command(menus.menus)
menus.menus.add_command(simulate.preview)
menus.menus.add_command(simulate.cost)
menus.menus.add_command(adapt.adapt)
cli.add_command(simulate.simulate)
cli.add_command(operations.emergency)
cli.add_command(operations.notices)
cli.add_command(agents.agents)
cli.add_command(alerts.alerts)
