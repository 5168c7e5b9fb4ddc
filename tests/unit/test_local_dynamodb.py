"""Starting and stopping the local DynamoDB."""
import os

import pytest

from membership_local import dynamodb


def test_free_port_is_bindable():
    port = dynamodb.free_port()
    assert 1024 < port < 65536
    assert dynamodb.port_is_free(port)


def test_dynamodb_local_starts_answers_and_stops_its_process_group():
    db = dynamodb.start_dynamodb(dynamodb.free_port())
    try:
        assert db.backend == "dynamodb-local"
        assert db.endpoint == f"http://127.0.0.1:{db.port}"
        assert db.client().list_tables()["TableNames"] == []
        with pytest.raises(dynamodb.DynamoDBStartError, match="in use"):
            dynamodb.start_dynamodb(db.port)
        java = [p for p in os.listdir("/proc") if p.isdigit() and f"-port\0{db.port}" in _cmdline(p)]
        assert java, "DynamoDB Local process not found"
    finally:
        db.stop()
    db.stop()  # idempotent
    assert dynamodb.port_is_free(db.port)
    assert not any(_cmdline(p) for p in java)


def test_falls_back_to_moto_without_java(monkeypatch, capsys):
    monkeypatch.setattr(dynamodb, "ensure_java", lambda install=True: None)
    db = dynamodb.start_dynamodb(dynamodb.free_port())
    try:
        assert db.backend == "moto"
        assert db.client().list_tables()["TableNames"] == []
    finally:
        db.stop()
    assert "falling back to moto" in capsys.readouterr().err


def test_no_fallback_when_disabled(monkeypatch):
    monkeypatch.setattr(dynamodb, "ensure_java", lambda install=True: None)
    with pytest.raises(dynamodb.DynamoDBStartError, match="fallback is disabled"):
        dynamodb.start_dynamodb(dynamodb.free_port(), allow_fallback=False)


def test_ensure_java_without_install_reports_missing(monkeypatch):
    monkeypatch.setattr(dynamodb.shutil, "which", lambda name: None)
    assert dynamodb.ensure_java(install=False) is None


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""
