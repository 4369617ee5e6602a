"""What every `sipsync-peer` command does the same way: fail with a message and an exit code,
read the device's settings or fail so, and find one of its datasets by name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from . import config as peer_config
from .config import ConfigError, Dataset, PeerConfig
from .sync_outcome import EXIT_FAILED, EXIT_USAGE


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"sipsync-peer: {message}", err=True)
    sys.exit(code)


def load_config(data_dir: Path) -> PeerConfig:
    try:
        return peer_config.load(data_dir)
    except ConfigError as exc:
        fail(str(exc))


def dataset_named(data_dir: Path, name: str) -> Dataset:
    """The device's dataset `name`; a command about one dataset fails (exit 1) without it."""
    try:
        config = peer_config.load(data_dir)
    except ConfigError as exc:
        fail(str(exc), EXIT_FAILED)
    dataset = config.datasets.get(name)
    if dataset is None:
        fail(f"no dataset {name!r} on this device (see `sipsync-peer status`)", EXIT_FAILED)
    return dataset
