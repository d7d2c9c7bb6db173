"""Run: one run as the stages see it: its config, its folder and its store, opened once.

The orchestrator (hivemind.pipeline) makes one Run per command and hands it to every stage it runs, so `run`
opens the store once for collect, embed, score, analyze and report instead of each stage re-opening it from
`config.store_path`. The store is opened on first use, not up front: a collect with nothing to ask, or one
refused before its first request, creates no store, as before.

A Run opened read-only (`analyze` and `report` on their own) hands out a read-only store: those stages cannot
change what they read. A caller from Python that holds only a config may pass the config to a stage; the
stage then opens a Run for that call (`Run.of`) and closes it after.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hivemind.core.errors import HivemindError
from hivemind.store.store import Store

if TYPE_CHECKING:
    from hivemind.core.config import RunConfig


@dataclass
class Run:
    config: RunConfig
    """The run's config (systems, prompts, embedder, scorers, results folder)."""
    read_only: bool = False
    """True: the store is opened for reading only (nothing created, migrated or written)."""
    _store: Store | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def folder(self) -> Path:
        """The run folder under the results folder (config.yaml, store.sqlite, the tables, the report)."""
        return self.config.run_dir

    @property
    def store_path(self) -> Path:
        return self.config.store_path

    def has_store(self) -> bool:
        return self._store is not None or self.store_path.is_file()

    def store(self, create: bool = False) -> Store:
        """The run's store, opened on first use and the same connection after. create=True makes the file
        when it is not there (collect, import); otherwise a missing store is an error naming what to run."""
        if self._store is None:
            if self.read_only:
                if create:
                    raise HivemindError(f"{self.store_path}: the run is open read-only here; nothing is created")
                self._store = Store.open_readonly(self.store_path)
            else:
                self._store = Store(self.store_path, create=create)
        return self._store

    def existing_store(self) -> Store | None:
        """The store if the run has one, else None (nothing is created): for reads that mean "nothing yet"."""
        return self.store() if self.has_store() else None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @staticmethod
    def config_of(run: Run | RunConfig) -> RunConfig:
        return run.config if isinstance(run, Run) else run

    @classmethod
    @contextmanager
    def open(cls, config: RunConfig, read_only: bool = False) -> Iterator[Run]:
        """A Run whose store (once opened) is closed when the block ends, however it ends."""
        run = cls(config, read_only=read_only)
        try:
            yield run
        finally:
            run.close()

    @classmethod
    @contextmanager
    def of(cls, run: Run | RunConfig, read_only: bool = False) -> Iterator[Run]:
        """A stage's first line: the Run it was handed (left open for the next stage), or, given a config, a
        Run opened for this call and closed after it."""
        if isinstance(run, Run):
            yield run
            return
        with cls.open(run, read_only=read_only) as opened:
            yield opened
