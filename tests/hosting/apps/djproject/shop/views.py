from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return JsonResponse({"hello": name, "q": request.GET.get("q"), "secure": request.is_secure()})


async def async_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"async": True, "method": request.method})
