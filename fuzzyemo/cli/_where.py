"""Options that say where work runs (fuzzyemo._scale), shared by annotate and build-dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="Parallel worker processes (default: the number of CPUs).",
    show_default=False)]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS",
    help="Run on an existing Dask cluster: its scheduler's address (tcp://host:port). Needs "
         "the [distributed] extra; inputs must be readable at the same paths on every worker.",
    show_default=False)]
SchedulerFileOpt = Annotated[Path | None, typer.Option(
    "--scheduler-file", help="Run on the Dask cluster described by this scheduler file "
                             "(dask scheduler --scheduler-file PATH).", show_default=False)]
