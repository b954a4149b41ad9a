"""The OpenAI-compatible endpoint under /v1/ and the API keys page. Thin: the wire format is
api/wire.py, one answer api/completions.py, keys api/services.py and api/selectors.py; the
question goes through the one pipeline (chat/pipeline.py), as the chat socket's does.

/v1/ authenticates with `Authorization: Bearer <key>` only: a browser's session cookie never
counts there (no CSRF exposure), and every error is OpenAI's JSON error object.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.roles import ASK_QUESTIONS, Role
from api.completions import AnswerRun, ask_error
from api.models import ApiKey
from api.openapi import openapi_document
from api.selectors import (
    KeyVerdict,
    api_key_check,
    api_keys_active,
    api_keys_of,
    role_api_access,
    user_api_access,
)
from api.services import KeyRefused, api_key_create, api_key_revoke, api_key_used, role_api_access_set
from api.wire import MODEL, ApiError, chat_request_parse, model_object
from chat.events import AskError
from chat.limits import rate_limited, rate_window_left
from chat.pipeline import question_answer
from chat.state import Asking
from core.db import release_db_connection
from core.tracing import new_id, trace_id_var

logger = logging.getLogger(__name__)

KEY_ERRORS = {
    KeyVerdict.INVALID: ApiError(401, "Incorrect API key provided.", code="invalid_api_key"),
    KeyVerdict.EXPIRED: ApiError(401, "This API key has expired. Create a new one.", code="expired_api_key"),
    KeyVerdict.NOT_ALLOWED: ApiError(
        403, "This key's user may not ask policy questions.", code="not_allowed", type="permission_error"
    ),
    KeyVerdict.API_OFF: ApiError(
        403,
        "API access is turned off for your role. Ask an administrator.",
        code="api_access_disabled",
        type="permission_error",
    ),
}


def _error(exc: ApiError) -> JsonResponse:
    response = JsonResponse(exc.body(), status=exc.status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="policydesk"'
    return response


def _method_not_allowed(allowed: str) -> JsonResponse:
    response = _error(ApiError(405, f"Use {allowed} here.", code="method_not_allowed"))
    response["Allow"] = allowed
    return response


def _checked_key(secret: str) -> ApiKey:
    try:
        check = api_key_check(secret=secret)
        if check.key is None:
            raise KEY_ERRORS[check.verdict]
        api_key_used(key=check.key)
        return check.key
    finally:
        release_db_connection()


async def _key(request: HttpRequest) -> ApiKey:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "No API key: send one as 'Authorization: Bearer <key>' (create it on the API keys page).",
            code="missing_api_key",
        )
    return await sync_to_async(_checked_key, thread_sensitive=False)(secret.strip())


def _body(request: HttpRequest) -> bytes:
    limit = settings.API_MAX_REQUEST_BYTES
    too_large = ApiError(413, f"The request is larger than {limit} bytes.", code="request_too_large")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


def _site(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return _method_not_allowed("POST")
    trace_id_var.set(new_id())
    try:
        key = await _key(request)
        chat = chat_request_parse(_body(request))
        if await rate_limited(
            user_id=key.user_id, action="ask", per_minute=settings.CHAT_RATE_LIMIT_PER_MINUTE
        ):
            raise ApiError(
                429,
                "Too many questions in a minute (the chat and the API share the limit). Please wait a little.",
                code="rate_limit_exceeded",
                type="rate_limit_error",
                retry_after=rate_window_left(),
            )
        logger.info(
            "api question",
            extra={
                "api_key_id": key.pk,
                "stream": chat.stream,
                "history_turns": len(chat.history),
                "without_effect": list(chat.without_effect),
            },
        )
        asking = Asking(
            channel="api",
            api_key_id=key.pk,
            history=chat.history,
            max_tokens=chat.max_tokens,
            temperature=chat.temperature,
        )
        run = AnswerRun(
            events=question_answer(
                user=key.user, question=chat.question, conversation_id=None, asking=asking
            ),
            site=_site(request),
            include_usage=chat.include_usage,
        )
        try:
            await run.start()
            if not chat.stream:
                return JsonResponse(await run.whole())
        except AskError as exc:
            raise ask_error(exc) from None
    except ApiError as exc:
        return _error(exc)
    response = StreamingHttpResponse(run.stream(), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed("GET")
    try:
        await _key(request)
    except ApiError as exc:
        return _error(exc)
    return JsonResponse({"object": "list", "data": [model_object()]})


@csrf_exempt
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed("GET")
    try:
        await _key(request)
        if model_id != MODEL:
            raise ApiError(
                404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model"
            )
    except ApiError as exc:
        return _error(exc)
    return JsonResponse(model_object())


def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(server=_site(request) + "/v1"), json_dumps_params={"indent": 1})


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    return _error(ApiError(404, f"There is no endpoint {request.path}.", code="unknown_url"))


# --- the API keys page -----------------------------------------------------------------------


def _page_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required let only signed-in users through
    if not (user.has_perm(ASK_QUESTIONS) or user.is_staff):
        raise PermissionDenied
    return user


def _page(request: HttpRequest, user: User, **context: Any) -> HttpResponse:
    may_ask = user.has_perm(ASK_QUESTIONS)
    context.update(
        may_ask=may_ask,
        api_on=may_ask and user_api_access(user=user),
        keys=api_keys_of(user=user) if may_ask else [],
        all_keys=api_keys_active()[:500] if user.is_staff else [],
        roles=role_api_access() if user.is_staff else {},
        api_base=_site(request) + "/v1",
        now=timezone.now(),
    )
    response = render(request, "api/keys.html", context, status=context.pop("status", 200))
    response["Cache-Control"] = "no-store"  # a new key is on the page once, and never cached
    return response


@login_required
def keys_page(request: HttpRequest) -> HttpResponse:
    return _page(request, _page_user(request))


@require_POST
@login_required
def key_create(request: HttpRequest) -> HttpResponse:
    user = _page_user(request)
    if not (user.has_perm(ASK_QUESTIONS) and user_api_access(user=user)):
        raise PermissionDenied
    days = request.POST.get("expires_days", "").strip()
    try:
        if days and not days.isdigit():
            raise KeyRefused("Expiry is a number of days, or empty for never.")
        created = api_key_create(
            user=user, name=request.POST.get("name", ""), expires_days=int(days) if days else None
        )
    except KeyRefused as exc:
        return _page(request, user, error=str(exc), status=400)
    return _page(request, user, new_key=created.key, new_secret=created.secret, status=201)


@require_POST
@login_required
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    user = _page_user(request)
    key = get_object_or_404(ApiKey, pk=key_id)
    if key.user_id != user.pk and not user.is_staff:
        raise Http404("No such key")
    api_key_revoke(key=key, by=user)
    return redirect("api_keys:page")


@require_POST
@login_required
def role_access(request: HttpRequest) -> HttpResponse:
    user = _page_user(request)
    if not user.is_staff:
        raise PermissionDenied
    for role in role_api_access():
        role_api_access_set(role=Role(role), enabled=f"api_{role.value}" in request.POST, by=user)
    return redirect("api_keys:page")
