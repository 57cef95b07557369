"""The Django project as ASGI: HTTP through Django's own ASGIHandler, WebSockets through Channels."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # before importing consumers: it sets up the apps

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from djproject.shop.consumers import RoomConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_http,
    "websocket": URLRouter([path("ws/room/<str:room>/", RoomConsumer.as_asgi())]),
})
