"""Progress of a long stage while it runs (issue 27, item 4): as each statement finishes, one INFO line
with the stage, how many of its statements are done out of how many, the statement's name, its rows
and seconds, the time so far and an estimate of what remains. In the Airflow task log and the CLI
alike (both show this logger at INFO). Names and counts only, never a value of a row.

The estimate scales what the same statements took the last time (a previous round's recorded
seconds, when the caller has them) by how this run compares so far; without them, by the statements
left."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("dtsen.progress")


@dataclass
class Part:
    """A part being timed (`timed`): the caller sets `rows` once it knows them."""

    rows: int | None = None


class Progress:
    def __init__(self, stage: str, names: Sequence[str], expected: Mapping[str, float] | None = None):
        self.stage = stage
        self.names = list(names)
        self.expected = {k: float(v) for k, v in (expected or {}).items()}
        self.started = time.perf_counter()
        self.spent: dict[str, float] = {}
        self._lock = threading.Lock()  # parts may finish on several threads (the publish streams)

    def remaining(self) -> float | None:
        """Seconds the statements not done yet should take, or None before the first is done."""
        left = [n for n in self.names if n not in self.spent]
        if not self.spent:
            return None
        elapsed = time.perf_counter() - self.started
        if self.expected and all(n in self.expected for n in self.names):
            before = sum(self.expected[n] for n in self.spent)
            pace = elapsed / before if before > 0 else 1.0
            return pace * sum(self.expected[n] for n in left)
        return elapsed / len(self.spent) * len(left)

    def finished(self, name: str, rows: int | None, seconds: float) -> None:
        with self._lock:
            self.spent[name] = seconds
            self._log(name, rows, seconds)

    def _log(self, name: str, rows: int | None, seconds: float) -> None:
        remaining = self.remaining()
        log.info(
            "%s: %d/%d %s: %s rows in %.1f s; %.1f s so far, %s",
            self.stage,
            len(self.spent),
            len(self.names),
            name,
            f"{rows:,}" if rows is not None and rows >= 0 else "-",
            seconds,
            time.perf_counter() - self.started,
            "done" if len(self.spent) >= len(self.names) else f"about {remaining:.0f} s to go",
        )


def step_finished(
    stage: str, steps: Sequence[str], name: str, seconds: float, part: str | None = None
) -> None:
    """A round step's line when it runs as its own Airflow task: where it stands among the round's
    `steps` (a task cannot see the others' times, so no estimate here; its statements' lines have
    one). `part`: the submission a per-submission task ran for."""
    position = f"{steps.index(name) + 1}/{len(steps)} " if name in steps else ""
    log.info("%s: step %s%s%s: done in %.1f s", stage, position, name, f" ({part})" if part else "", seconds)


@contextlib.contextmanager
def timed(progress: Progress | None, name: str) -> Iterator[Part]:
    """Time the block as the part `name` of `progress` and log its line when the block ends without
    an error (nothing when `progress` is None): `with timed(p, "keluarga.csv") as part: ...; part.rows = n`."""
    part, started = Part(), time.perf_counter()
    yield part
    if progress is not None:
        progress.finished(name, part.rows, time.perf_counter() - started)
