"""The test suite's handle on the provider's directory: create users, change their groups,
register clients. Guarded by a token only the launcher knows."""

from __future__ import annotations

import json
import os

from django.contrib.auth.models import Group, User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import Application


def _authorised(request: HttpRequest) -> bool:
    return constant_time_compare(request.headers.get("X-Test-Token", ""), os.environ["IDP_TEST_TOKEN"])


@csrf_exempt
def user_put(request: HttpRequest) -> HttpResponse:
    if not _authorised(request) or request.method != "POST":
        return HttpResponse(status=403)
    body = json.loads(request.body)
    user, _ = User.objects.get_or_create(username=body["username"])
    if "password" in body and not user.check_password(body["password"]):
        user.set_password(body["password"])  # a new hash would end the user's sessions here
    user.is_active = body.get("active", True)
    user.save()
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in body.get("groups", [])])
    return JsonResponse({"sub": str(user.pk)})


@csrf_exempt
def client_put(request: HttpRequest) -> HttpResponse:
    if not _authorised(request) or request.method != "POST":
        return HttpResponse(status=403)
    body = json.loads(request.body)
    Application.objects.filter(client_id=body["client_id"]).delete()
    Application.objects.create(
        name=body["client_id"],
        client_id=body["client_id"],
        client_secret=body["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(body["redirect_uris"]),
        post_logout_redirect_uris=" ".join(body.get("post_logout_redirect_uris", [])),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    return JsonResponse({"client_id": body["client_id"]})
