"""The cockpit is for the admins group: every URL refuses analysts with a 403."""

import pytest
from django.urls import URLPattern, reverse

from triage.cockpit import urls as cockpit_urls

from ..factories import make_user

pytestmark = pytest.mark.django_db


def every_cockpit_url(version_pk: int = 1) -> list[str]:
    sample = {"slug": "billing", "pk": version_pk}
    out = []
    for pattern in cockpit_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {k: sample[k] for k in pattern.pattern.regex.groupindex}
        out.append(reverse(f"cockpit:{pattern.name}", kwargs=kwargs))
    return out


def test_the_url_list_covers_every_page():
    assert len(every_cockpit_url()) == len(cockpit_urls.urlpatterns) >= 10


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_analyst_gets_403_on_every_cockpit_url(client, champion, method):
    client.force_login(make_user("alice"))
    for url in every_cockpit_url(champion.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 403, url


def test_an_anonymous_visitor_is_sent_to_log_in(client, categories):
    for url in every_cockpit_url():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")


def test_admins_open_every_page(admin_client, champion):
    for url in every_cockpit_url(champion.pk):
        if url.endswith(("/save", "/reroute")):
            continue  # POST only
        query = "?mode=target&target=0.9" if url.endswith("/preview") else ""
        response = admin_client.get(url + query)
        assert response.status_code == 200, (url, response.status_code)


def test_the_navigation_links_the_cockpit_for_admins_only(client, admin_user, categories):
    client.force_login(admin_user)
    assert 'href="/cockpit/"' in client.get("/reviews/").content.decode()
    client.force_login(make_user("alice"))
    assert 'href="/cockpit/"' not in client.get("/reviews/").content.decode()
