import pytest
from fastapi.testclient import TestClient

from shop.main import create_app

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


@pytest.fixture
def app():
    return create_app()


@pytest.fixture
def client(app):
    with TestClient(app) as client:  # runs the lifespan: app.state.db
        yield client
