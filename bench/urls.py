"""The portal's URLs plus the trivial views the benchmarks compare against.

They pass through the same middleware as the portal's own views; the GET one
needs a login like the live table does, the POST one is open and CSRF-exempt
like the webhook receiver.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from fleet_portal.urls import urlpatterns as portal_urlpatterns


@require_GET
def trivial(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@csrf_exempt
@login_not_required
@require_POST
def trivial_post(request: HttpRequest) -> JsonResponse:
    # Read the body as the receiver does, so both move the same bytes.
    request.read()
    return JsonResponse({"status": "accepted"})


urlpatterns = [
    path("_bench/trivial/", trivial, name="bench_trivial"),
    path("_bench/trivial-post/", trivial_post, name="bench_trivial_post"),
    *portal_urlpatterns,
]
