"""Security settings from the environment, the CSP header, login throttling."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test.client import Client

from .factories import make_user

ROOT = Path(__file__).resolve().parent.parent

# What the README's "Running in production" section exports.
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "triage.settings",
    "TRIAGE_ENV_FILE": "",  # no developer .env
    "DEBUG": "0",
    "ALLOWED_HOSTS": "triage.example.org",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "TRIAGE_CACHE_URL": "redis://redis.internal:6379/1",
}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "TRIAGE_", "SECURE", "SESSION_", "CSRF_"))
        and k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_a_production_environment():
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_flags_a_development_environment():
    # The same check fails loudly when the production variables are missing, so the
    # clean result above comes from them, not from a check that cannot fail.
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_SETTINGS_MODULE="triage.settings",
        TRIAGE_ENV_FILE="",
        DEBUG="1",
    )
    assert done.returncode != 0
    for warning in ["security.W004", "security.W008", "security.W012", "security.W016"]:
        assert warning in done.stderr


def test_check_deploy_warns_when_rate_limit_counts_are_per_process():
    production = {k: v for k, v in PRODUCTION.items() if k != "TRIAGE_CACHE_URL"}
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **production,
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert done.returncode != 0
    assert "triage.W001" in done.stderr and "TRIAGE_CACHE_URL" in done.stderr


def test_production_refuses_to_start_without_a_secret_key():
    done = run(["manage.py", "check"], **PRODUCTION)
    assert done.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in done.stderr


def test_production_refuses_the_development_key():
    done = run(
        ["manage.py", "check"],
        **PRODUCTION,
        SECRET_KEY="insecure-development-key-do-not-use-in-production",
    )
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr


def production_settings(**env: str) -> dict[str, object]:
    names = [
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
    ]
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    )
    done = run(["-c", script], **(PRODUCTION | {"SECRET_KEY": "x" * 50} | env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_https_settings_default_on_in_production():
    values = production_settings()
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "X_FRAME_OPTIONS": "DENY",
    }


def test_each_security_setting_comes_from_the_environment():
    values = production_settings(
        TRIAGE_HTTPS="0", SECURE_HSTS_SECONDS="600", SECURE_PROXY_SSL_HEADER=""
    )
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 600
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_with_debug_on_the_policy_is_report_only_so_django_error_pages_work():
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CONTENT_SECURITY_POLICY is None,"
        " s.CONTENT_SECURITY_POLICY_REPORT_ONLY == s.CSP_POLICY)"
    )
    done = run(
        ["-c", script], DJANGO_SETTINGS_MODULE="triage.settings", TRIAGE_ENV_FILE="", DEBUG="1"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_without_inline_scripts(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    # No inline script in the page (a CSP without 'unsafe-inline' would block it).
    html = response.content.decode()
    assert "<script>" not in html and "<script " not in html.replace("<script src=", "")
    assert response["X-Frame-Options"] == "DENY"


# --- login throttling --------------------------------------------------------------------


def login(client: Client, username: str, password: str) -> int:
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return response.status_code


@pytest.mark.django_db
def test_logins_are_locked_after_five_failures_for_that_user_and_address(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    make_user("alice", password="right-pw")
    make_user("bob", password="bobs-pw")
    client = Client()
    assert [login(client, "alice", "wrong") for _ in range(4)] == [200] * 4  # form errors
    assert login(client, "alice", "wrong") == 429
    # Locked: even the right password is refused, with the lockout page.
    response = client.post("/accounts/login/", {"username": "alice", "password": "right-pw"})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked.
    assert login(Client(), "bob", "bobs-pw") == 302


@pytest.mark.django_db
def test_a_successful_login_resets_the_failure_count():
    make_user("alice", password="right-pw")
    client = Client()
    assert [login(client, "alice", "wrong") for _ in range(4)] == [200] * 4
    assert login(client, "alice", "right-pw") == 302
    client.logout()
    assert [login(client, "alice", "wrong") for _ in range(4)] == [200] * 4
    assert login(client, "alice", "right-pw") == 302
