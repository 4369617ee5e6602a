"""What every `sipsync-peer` command does the same way: fail with a message and an exit code,
and read the device's settings or fail so."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from . import config as peer_config
from .config import ConfigError, PeerConfig
from .sync_outcome import EXIT_USAGE


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"sipsync-peer: {message}", err=True)
    sys.exit(code)


def load_config(data_dir: Path) -> PeerConfig:
    try:
        return peer_config.load(data_dir)
    except ConfigError as exc:
        fail(str(exc))
