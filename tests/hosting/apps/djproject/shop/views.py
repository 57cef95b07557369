from __future__ import annotations

import hashlib

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return JsonResponse({"hello": name, "q": request.GET.get("q"), "secure": request.is_secure()})


async def async_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"async": True, "method": request.method})


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    """A multipart upload (Django's parser reads the body as a stream; large files spill to a temporary file)."""
    files = {name: hashlib.sha256(b"".join(f.chunks())).hexdigest() for name, f in request.FILES.items()}
    return JsonResponse({"files": files, "fields": request.POST.dict()})
