"""`fleetwise` console script: one module per command in commands/, renderers in render/; this file registers them.

Library code raises typed errors; here they become one line on stderr and exit code 2. torch is imported
only by `measure`, so listing runs and printing schemas work without it.
"""

from __future__ import annotations

import importlib.metadata
import sys

import typer

from fleetwise_cli.commands.campaign import campaign
from fleetwise_cli.commands.compare import compare
from fleetwise_cli.commands.compare_plans import compare_plans_cmd
from fleetwise_cli.commands.day import day
from fleetwise_cli.commands.import_benchmark import import_cmd
from fleetwise_cli.commands.measure import measure_cmd
from fleetwise_cli.commands.runs import runs_cmd, show_cmd
from fleetwise_cli.commands.schema import schema_app
from fleetwise_cli.commands.simulate import simulate
from fleetwise_cli.commands.size import size
from fleetwise_cli.commands.validate import validate
from fleetwise_cli.errors import remember_interrupts

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Measured capacity planning for AI inference fleets."
)


def _version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("fleetwise")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        sys.stdout.write(f"fleetwise {version}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Measured capacity planning for AI inference fleets."""


app.add_typer(schema_app, name="schema")


app.command("simulate")(simulate)
app.command("size")(size)
app.command("day")(day)
app.command("compare")(compare)
app.command("compare-plans")(compare_plans_cmd)
app.command("validate")(validate)
app.command("import")(import_cmd)
app.command("campaign", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(campaign)
app.command("runs")(runs_cmd)
app.command("show")(show_cmd)
app.command("measure")(measure_cmd)


def main() -> None:
    """Console-script entry point."""
    remember_interrupts()
    app()


if __name__ == "__main__":
    main()
