# Logging as `logging:` sets it up: JSON lines off a terminal, readable text on one, a file
# rotated by size, and the request id on every line logged while a request is served.
from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import pytest
import yaml

from bridgehead.agent.config import load_config
from bridgehead.common import logs
from bridgehead.common.commands import UsageError
from bridgehead.common.config.base import LoggingConfig
from bridgehead.common.config.document import ConfigError
from bridgehead.common.requestid import bound
from bridgehead.relay.config import load_relay_config


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("restored_logging")
def test_json_off_a_terminal_and_text_on_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no format given, stderr that is not a terminal gets JSON lines; a terminal gets
    readable text with the level and the message."""
    logs.configure()
    logging.getLogger("bridgehead.test").warning("piped %d", 1)
    line = json.loads(capsys.readouterr().err.strip())
    assert (line["event"], line["level"], line["logger"]) == (
        "piped 1",
        "warning",
        "bridgehead.test",
    )
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    logs.configure()
    logging.getLogger("bridgehead.test").warning("on a terminal")
    text = terminal.getvalue()
    assert "on a terminal" in text
    assert "warning" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.usefixtures("restored_logging")
def test_a_log_file_rotates_by_size_and_keeps_its_backups(tmp_path: Path) -> None:
    """`file` with `max_bytes` and `backups`: the file moves aside past the size and only
    `backups` old files are kept; the level drops what is below it."""
    config = LoggingConfig(
        level="warning", file=tmp_path / "logs" / "agent.log", max_bytes=1024, backups=2
    )
    logs.apply(config)
    log = logging.getLogger("bridgehead.test")
    log.info("below the level")
    for i in range(200):
        log.warning("line %d %s", i, "x" * 40)
    logs.close()
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["agent.log", "agent.log.1", "agent.log.2"]
    lines = (tmp_path / "logs" / "agent.log").read_text().splitlines()
    assert json.loads(lines[-1])["event"].startswith("line 199")
    everything = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert "below the level" not in everything


@pytest.mark.usefixtures("restored_logging")
async def test_lines_logged_in_a_request_carry_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    """Inside a request, every logger's lines (a library's too, and in worker threads) carry
    its id; an explicit id wins; outside a request there is none."""
    logs.configure(json=True)
    with bound("req-42"):
        logging.getLogger("aiohttp.server").warning("library line")
        await asyncio.to_thread(logging.getLogger("bridgehead.x").warning, "thread line")
        logging.getLogger("x").warning("explicit", extra={"request_id": "other"})
    logging.getLogger("x").warning("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line.get("request_id")) for line in lines] == [
        ("library line", "req-42"),
        ("thread line", "req-42"),
        ("explicit", "other"),
        ("outside", None),
    ]


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_logging_sections_are_validated_in_both_configs(tmp_path: Path) -> None:
    """agent.yaml and relay.yaml take the same `logging:` (defaults INFO on stderr, a file
    beside the config); a bad level or an unknown key is an error naming its path."""
    agent = {"sources": {"s": {"sqlite": "x.db"}}, "logging": {"level": "debug", "file": "a.log"}}
    config = load_config(write(tmp_path / "agent.yaml", agent))
    assert (config.logging.level, config.logging.file) == ("DEBUG", tmp_path / "a.log")
    assert load_config(write(tmp_path / "b.yaml", {"sources": agent["sources"]})).logging == (
        LoggingConfig()
    )
    agent["logging"] = {"level": "loud", "backup": 3}
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path / "agent.yaml", agent))
    assert "logging.level" in str(bad.value)
    assert "logging.backup" in str(bad.value)
    relay = {"tls": {"cert": "r.pem", "key": "r.key"}, "ca": {"cert": "ca.pem"}}
    relay["logging"] = {"file": "relay.log", "max_bytes": 10}
    with pytest.raises(ConfigError) as bad:
        load_relay_config(write(tmp_path / "relay.yaml", relay))
    assert "logging.max_bytes" in str(bad.value)
    relay["logging"] = {"file": "relay.log", "backups": 0}
    relay_config = load_relay_config(write(tmp_path / "relay.yaml", relay))
    assert relay_config.logging.file == tmp_path / "relay.log"


@pytest.mark.usefixtures("restored_logging")
def test_a_log_file_that_cannot_be_opened_is_one_sentence(tmp_path: Path) -> None:
    """`logging.file` under a path that is a file: a usage error naming the setting."""
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(UsageError) as refused:
        logs.apply(LoggingConfig(file=tmp_path / "not-a-folder" / "agent.log"))
    assert str(refused.value).startswith("logging.file ")
