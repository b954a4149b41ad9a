from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect

from accounts.oidc import provider_logout_url


class SignInView(auth_views.LoginView):
    """The username and password form (local accounts and LDAP) and, when OIDC is on, the
    "Sign in with <company>" button."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (settings.AUTH_LOCAL or settings.AUTH_LDAP):
            raise Http404("password sign-in is off")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            password_sign_in=settings.AUTH_LOCAL or settings.AUTH_LDAP,
            oidc_sign_in=settings.AUTH_OIDC,
            oidc_provider_name=getattr(settings, "OIDC_PROVIDER_NAME", ""),
            sso_failed=self.request.GET.get("sso") == "failed",
            sso_unavailable=self.request.GET.get("sso") == "unavailable",
            directory_unavailable=getattr(self.request, "ldap_unavailable", False),
        )
        return context


class SignOutView(auth_views.LogoutView):
    """Ends the PolicyDesk session and, after an OIDC sign-in, the provider's session too where
    the provider supports RP-initiated logout."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        provider_url = provider_logout_url(request)  # read before the session is flushed
        response = super().post(request, *args, **kwargs)
        return HttpResponseRedirect(provider_url) if provider_url else response
