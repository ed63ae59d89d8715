"""manage.py listen_webhooks: a receiver that prints each event and checks its signature."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triage.actions.models import generate_secret
from triage.actions.transport import post, signed_headers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener(webhook_settings):
    secret = generate_secret()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "listen_webhooks", "--port", "0", "--secret", secret],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("Listening on http://127.0.0.1:"), first
    url = first.split()[2]
    yield url + "webhooks", secret, process
    process.kill()
    process.wait(10)


def send(url, secret, body, *, sign_with=None):
    text = json.dumps(body)
    headers = signed_headers(
        secret=sign_with or secret, msg_id=body["id"], timestamp=int(time.time()), body=text
    )
    return post(
        url,
        body=text.encode(),
        headers=headers | {"Content-Type": "application/json"},
        timeout=5,
    )


def test_listen_webhooks_prints_each_event_and_its_signature_check(listener):
    url, secret, process = listener
    body = {
        "id": "evt_1",
        "type": "item.routed",
        "data": {
            "item": {"external_id": "dm-7", "text": "we need water"},
            "category": "request",
            "decided_by": "model:v1",
            "confidence": 0.97,
        },
    }
    assert send(url, secret, body).status_code == 200
    line = process.stdout.readline()
    assert "evt_1" in line and "signature OK" in line
    assert "item.routed | dm-7 → request | by model:v1 | confidence 0.97" in line

    forged = send(url, secret, body | {"id": "evt_2"}, sign_with=generate_secret())
    assert forged.status_code == 401
    line = process.stdout.readline()
    assert "evt_2" in line and "signature INVALID" in line
