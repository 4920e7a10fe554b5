"""`icldsl cache stats` and `icldsl cache clear`: the on-disk cache of LM calls."""

from __future__ import annotations

import argparse

from ..errors import EXIT_OK
from ..lm.cache import LMCache, default_path
from .console import Failure


def cmd_cache_stats(args: argparse.Namespace) -> int:
    path = default_path()
    if not path.exists():
        print(f"no LM cache at {path} yet")
        return EXIT_OK
    with LMCache(path) as cache:
        stats = cache.stats()
    print(f"LM cache {stats.path}: {stats.entries} entries, {_size(stats.size)} on disk")
    if stats.models:
        width = max(len(m.model) for m in stats.models) + 4
        print(f"{'model':<{width}}{'entries':>9}{'size':>11}{'hits':>9}{'misses':>9}")
        for m in stats.models:
            print(f"{'  ' + m.model:<{width}}{m.entries:>9}{_size(m.bytes):>11}{m.hits:>9}{m.misses:>9}")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace) -> int:
    path = default_path()
    if not path.exists():
        print(f"no LM cache at {path}; nothing to clear")
        return EXIT_OK
    with LMCache(path) as cache:
        if args.model is not None and args.model not in {m.model for m in cache.stats().models}:
            known = ", ".join(m.model for m in cache.stats().models) or "none"
            raise Failure(f"the LM cache has no entries for model `{args.model}`; models in it: {known}")
        removed = cache.clear(args.model)
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}" + (f" of {args.model}" if args.model else "")
          + f" from {path}")
    return EXIT_OK


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
