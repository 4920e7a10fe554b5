"""The progress bars of long work: one per evaluation and epoch (`fit`, `eval`), and
`run`'s over a file of rows. Drawn on stderr, in place on a terminal."""

from __future__ import annotations

import shutil
import sys
import time


class ProgressLine:
    """A bar per evaluation and per epoch: counts, percent, running reward, rate, time
    left and cache hits. On a terminal it is redrawn in place (at most 10 times a second);
    otherwise only the finished line of each pass is printed; nothing with --quiet."""

    WIDTH = 24

    def __init__(self, quiet: bool, *, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started: dict[str, float] = {}
        self.drawn = 0.0

    def __call__(self, label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        start = self.started.setdefault(label, now)
        finished = done >= total
        if self.tty and not finished and done and now - self.drawn < 0.1:
            return
        if not self.tty and not finished:
            return
        self.drawn = now
        self.draw(self.line(label, done, total, reward, now - start, cache_hits), finished)

    def draw(self, text: str, finished: bool) -> None:
        """Show `text`: in place on a terminal (ending the line when `finished`), else as a line."""
        if self.tty:
            columns = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r\x1b[2K" + text[: columns - 1] + ("\n" if finished else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    @classmethod
    def line(cls, label: str, done: int, total: int, reward: float, elapsed: float, cache_hits: int = 0) -> str:
        """`label [#####-----] done/total pct reward r rate ex/s elapsed ~left cache hits`."""
        fraction = done / total if total else 1.0
        filled = round(cls.WIDTH * fraction)
        rate = done / elapsed if done and elapsed > 0 else 0.0
        parts = [f"{label:<20} [{'█' * filled}{'░' * (cls.WIDTH - filled)}] {done:>{len(str(total))}}/{total}"
                 f" {fraction:4.0%}", f"reward {reward:.3f}"]
        if rate:
            parts.append(f"{rate:.1f} ex/s")
        parts.append(duration(elapsed))
        if rate and done < total:
            parts.append(f"~{duration((total - done) / rate)} left")
        if cache_hits:
            parts.append(f"cache {cache_hits} hit{'s' if cache_hits != 1 else ''}")
        return "  ".join(parts)


class RunProgress(ProgressLine):
    """`run`'s bar over a file of rows: rows written of those to run, failures, rate and
    time left (without a total, as from stdin: the count and rate). Redrawn in place on a
    terminal; otherwise a line every 10 seconds and the last one."""

    EVERY = 10.0  # seconds between lines off a terminal

    def __init__(self, quiet: bool, total: int | None, *, stream=None) -> None:
        super().__init__(quiet, stream=stream)
        self.total = total
        self.start = self.drawn = time.monotonic()

    def update(self, done: int, failed: int, *, finished: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not finished and now - self.drawn < (0.1 if self.tty else self.EVERY):
            return
        self.drawn = now
        self.draw(self.run_line(done, self.total, failed, now - self.start), finished)

    @classmethod
    def run_line(cls, done: int, total: int | None, failed: int, elapsed: float) -> str:
        """`run [#####-----] done/total pct rate rows/s elapsed ~left failed`."""
        rate = done / elapsed if done and elapsed > 0 else 0.0
        if total:
            fraction = min(done / total, 1.0)
            filled = round(cls.WIDTH * fraction)
            parts = [f"run [{'█' * filled}{'░' * (cls.WIDTH - filled)}] {done:>{len(str(total))}}/{total} "
                     f"{fraction:4.0%}"]
        else:
            parts = [f"run {done} rows"]
        if rate:
            parts.append(f"{rate:.0f} rows/s")
        parts.append(duration(elapsed))
        if rate and total and done < total:
            parts.append(f"~{duration((total - done) / rate)} left")
        if failed:
            parts.append(f"{failed} failed")
        return "  ".join(parts)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
