"""Where the store is and what this server is called, from the TOML file, the environment and
the command line."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from control_server.cli import main
from control_server.config import ServerConfig, load_config


def test_by_default_the_store_is_the_data_directory_and_the_node_is_host_and_sip_port():
    config = ServerConfig(sip_port=5070)
    assert config.store == ""
    assert config.node() == f"{socket.gethostname()}:5070"
    assert ServerConfig(node_name="edge-1").node() == "edge-1"


def test_the_store_comes_from_toml_and_the_environment_overrides_it(tmp_path):
    file = tmp_path / "server.toml"
    file.write_text('store = "postgresql://db.example/sipsync"\nnode_name = "edge-1"\n')
    assert load_config(file, environ={}).store == "postgresql://db.example/sipsync"
    config = load_config(file, environ={"SIPSYNC_STORE": "postgresql://other/sipsync"})
    assert config.store == "postgresql://other/sipsync" and config.node() == "edge-1"


def test_the_server_refuses_a_store_that_is_not_a_postgresql_url(tmp_path):
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "--store", "mysql://db/x",
                                       "--sip-port", "0", "--no-admin"])
    assert result.exit_code == 1 and "postgresql://" in result.output


def test_a_sqlite_store_names_the_directory_of_its_file(tmp_path):
    from control_server.store import DB_NAME, open_database

    database = open_database(tmp_path / "unused", f"sqlite:{tmp_path / 'elsewhere'}")
    database.close()
    assert (tmp_path / "elsewhere" / DB_NAME).exists() and not (tmp_path / "unused").exists()
