"""The progress bar of a batch run: articles done, articles/s and ETA on stderr."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """A rich progress bar on stderr (articles/s and ETA), or nothing when not on a terminal."""

    def __init__(self, enabled: bool, total: int, skipped: int):
        self.enabled = enabled
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):  # type: ignore[no-untyped-def]
                    speed = task.finished_speed or task.speed
                    return Text(f"{speed:.2f}/s" if speed else "-/s", style="progress.data.speed")

            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                Rate(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task("articles", total=total, completed=skipped)

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, failed: int) -> None:
        """One more article finished; `failed` of all those finished so far failed."""
        if self._progress is not None:
            note = f" ({failed} failed)" if failed else ""
            self._progress.update(self._task, advance=1, description=f"articles{note}")

    def say(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)


def progress_bar(enabled: bool | None, total: int, skipped: int) -> ProgressBar:
    """enabled=None: only when stderr is a terminal."""
    return ProgressBar(sys.stderr.isatty() if enabled is None else enabled, total, skipped)
