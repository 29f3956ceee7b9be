import pytest
from rest_framework.test import APIClient

from core.services import api_key_create


@pytest.fixture
def api_key(db) -> str:
    return api_key_create(name="test client")[1]


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client
