from __future__ import annotations

from django.urls import path

from accounts import oidc, views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    # Served 404 while POLICYDESK_AUTH_OIDC is off.
    path("oidc/authenticate/", oidc.DirectoryOIDCAuthenticateView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.DirectoryOIDCCallbackView.as_view(), name="oidc_authentication_callback"),
]
