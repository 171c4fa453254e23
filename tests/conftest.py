"""Shared fixtures: API and admin clients over the test database."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient


@pytest.fixture(scope="session", autouse=True)
def collected_static_files() -> None:
    """Collect static files once, as a deployment does: the admin's pages need the manifest."""
    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client(db: Any) -> Client:
    user = get_user_model().objects.create_superuser(username="ops", email="ops@example.com", password="s3cret-pass")
    client = Client()
    client.force_login(user)
    return client
