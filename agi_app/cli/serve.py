"""`hotline serve`: run the call server."""

from __future__ import annotations

import asyncio

import click

from agi_app.ari.router import EventsLost
from agi_app.cli.common import EXIT_CONFIG, EXIT_UNAVAILABLE, fail, settings
from agi_app.config import ConfigError
from agi_app.logs import setup_logging
from agi_app.serve.app import StartupError, serve_forever

# Exit codes of `hotline serve` beyond the shared ones (agi_app/cli/common.py): it stopped on its
# own because the application's events no longer reach it, after handing its calls to the dialplan.
EXIT_REPLACED = 4  # another `hotline serve` took over the ARI application
EXIT_EVENTS_LOST = 5  # the ARI event reader failed


@click.command()
@click.option("--flows-file", type=click.Path(exists=True, dir_okay=False),
              help="Serve this flow file instead of the active published menu version.")
@click.option("--grace", type=float, help="Seconds calls get to finish on SIGTERM [default 20].")
@click.option("--metrics-listen", metavar="HOST:PORT",
              help="Where Prometheus scrapes /metrics [env HOTLINE_METRICS_LISTEN, default 127.0.0.1:9464].")
@click.pass_context
def serve(ctx: click.Context, flows_file: str | None, grace: float | None, metrics_listen: str | None) -> None:
    """Run the ARI call server until SIGTERM/Ctrl-C (calls in progress are not cut).

    \b
    Exit codes besides 0-3 (see `hotline --help`):
      4  another hotline serve took over the ARI application: this one handed its
         calls to the dialplan fallback and stopped (run one server per application)
      5  the ARI event reader failed: calls handed to the dialplan fallback likewise
    """
    s = settings(ctx).with_overrides(flows_file=flows_file, shutdown_grace_s=grace, metrics_listen=metrics_listen)
    setup_logging(s.log_level)
    try:
        asyncio.run(serve_forever(s))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StartupError as exc:
        fail(str(exc), EXIT_UNAVAILABLE if exc.unreachable else EXIT_CONFIG)
    except EventsLost as exc:
        if exc.replaced:
            fail(f"{exc}: this one handed its calls to the dialplan fallback and stopped "
                 "(run one hotline serve per ARI application)", EXIT_REPLACED)
        fail(f"{exc}: calls were handed to the dialplan fallback", EXIT_EVENTS_LOST)
