from __future__ import annotations

from django.contrib import admin
from django.urls import path

from djproject.shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("hello/<str:name>/", views.hello),
    path("async/", views.async_view),
    path("upload/", views.upload),
]
