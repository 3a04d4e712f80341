"""mrnet-node's options: bad ones give one line with a code and exit 2, before anything listens."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from mrnet.node.cli import app
from mrnet.node.outbox import Destination


def _node(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_a_destination_must_be_aet_at_host_colon_port(tmp_path):
    result = _node("--destination", "PACS:4242", "--work-dir", tmp_path)
    assert result.exit_code == 2 and "[BAD_OPTION]" in result.output and "Traceback" not in result.output
    assert Destination.parse("PACS@127.0.0.1:4242") == Destination("PACS", "127.0.0.1", 4242)


def test_an_ae_title_longer_than_16_characters_is_refused(tmp_path):
    result = _node("--destination", "PACS@127.0.0.1:4242", "--work-dir", tmp_path, "--ae-title", "X" * 17)
    assert result.exit_code == 2 and "[BAD_OPTION]" in result.output


def test_a_port_in_use_is_a_coded_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _node("--destination", "PACS@127.0.0.1:4242", "--work-dir", tmp_path, "--port", port)
    assert result.exit_code == 2 and "[PORT_IN_USE]" in result.output and "Traceback" not in result.output
