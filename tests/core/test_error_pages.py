"""With DEBUG off, errors show the product's pages, not Django's debug page."""

import pytest
from django.test import Client, override_settings
from django.urls import include, path


def broken(request):
    raise RuntimeError("a bug")


urlpatterns = [path("broken/", broken), path("", include("config.urls"))]


@override_settings(DEBUG=False)
def test_a_missing_page_is_the_product_404(client, db):
    answer = client.get("/nope/")

    assert answer.status_code == 404
    assert [t.name for t in answer.templates][:2] == ["404.html", "portal/base.html"]
    page = answer.content.decode()
    assert "Page not found" in page and "There is no page at <code>/nope/</code>" in page
    assert "Billing portal" in page
    assert "Traceback" not in page and "URLconf" not in page


@pytest.mark.urls("tests.core.test_error_pages")
@override_settings(DEBUG=False)
def test_a_view_that_raises_is_the_product_500(db):
    client = Client(raise_request_exception=False)

    answer = client.get("/broken/")

    assert answer.status_code == 500
    page = answer.content.decode()
    assert "Something went wrong on our side" in page
    assert "Billing portal" in page
    assert "RuntimeError" not in page and "a bug" not in page
