"""Built-in datasets a user has no copy of: fetched once from their public source into
the user's cache (`datasets/<name>` in `paths.cache_root()`, by default `~/.cache/icldsl`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from icldsl.datasets.base import DataError
from icldsl.datasets.rows import resolve
from icldsl.download import DownloadError, fetch
from icldsl.paths import cache_root


def cache_dir(name: str) -> Path:
    """`datasets/<name>` in the cache folder (`paths.cache_root`)."""
    return cache_root() / "datasets" / name


def download(url: str, dest: Path, *, what: str, env: str) -> None:
    """Fetch `url` into `dest` atomically (`icldsl.download.fetch`).

    `what` names the dataset and `env` the variable that points at a local copy, so a
    failed download says how to do without it.
    """
    try:
        fetch(url, dest)
    except DownloadError as exc:
        raise DataError(f"could not download {what} from {url}: {exc}; set {env} to a local copy") from exc
    except OSError as exc:
        raise DataError(f"cannot write the {what} cache: {exc}", file=str(dest)) from exc


@dataclass(frozen=True, slots=True)
class Published:
    """A built-in dataset's files, found where the user says or fetched from `base_url`.

    `name` is its cache folder, `title` how messages name it, `env` the variable that
    points at a local copy.
    """

    name: str
    title: str
    files: tuple[str, ...]
    env: str
    base_url: str

    def find(self, path: str | None, *, base_dir: Path, base_url: str | None = None) -> Path:
        """The directory holding the files: `path` (relative to `base_dir`), else the
        variable `env`, else the cache, downloading what it lacks from `base_url`."""
        if path is not None:
            return self._complete(resolve(path, base_dir), "the `path` option")
        env = os.environ.get(self.env)
        if env:
            return self._complete(Path(env).expanduser(), f"${self.env}")
        cache = cache_dir(self.name)
        for file in self.files:
            if not (cache / file).is_file():
                url = f"{(base_url or self.base_url).rstrip('/')}/{file}"
                download(url, cache / file, what=self.title, env=self.env)
        return cache

    def _complete(self, directory: Path, source: str) -> Path:
        for file in self.files:
            if not (directory / file).is_file():
                raise DataError(f"no {self.title} {file} in the directory given by {source}", file=str(directory))
        return directory
