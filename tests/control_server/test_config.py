"""The throttle's and the challenges' settings, from defaults, a TOML file and the environment."""

from __future__ import annotations

from control_server.config import ServerConfig, load_config


def test_the_defaults_ban_after_ten_failures_in_a_minute_for_five_minutes():
    config = ServerConfig()
    assert (config.ban_after_failures, config.failure_window, config.ban_seconds) == (10, 60.0,
                                                                                      300.0)
    assert config.multi_challenge_agents == "sipsync-peer" and config.throttle_allow == ""


def test_throttle_settings_come_from_toml_and_the_environment_overrides_them(tmp_path):
    file = tmp_path / "server.toml"
    file.write_text('[server]\nban_after_failures = 5\nban_seconds = 60\n'
                    'throttle_allow = "10.0.0.1,10.0.0.2"\nflood_requests = 0\n')
    config = load_config(file, environ={"SIPSYNC_BAN_SECONDS": "900"})
    assert (config.ban_after_failures, config.ban_seconds, config.flood_requests) == (5, 900.0, 0)
    assert config.throttle_allow == "10.0.0.1,10.0.0.2"
