"""Sign-in settings: local accounts, OIDC and LDAP, each on or off, validated at start.

Every value comes from a POLICYDESK_* variable; secrets (the OIDC client secret, the LDAP bind
password) have no default. `sign_in_settings()` returns the Django settings to add: those of
mozilla-django-oidc (OIDC_*) and django-auth-ldap (AUTH_LDAP_*), and PolicyDesk's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from accounts.directory import GroupMapError, group_map_parse
from config.env import PREFIX, env_bool, env_choice, env_float, env_int, env_optional_str, env_str

LOCAL_BACKEND = "django.contrib.auth.backends.ModelBackend"
OIDC_BACKEND = "accounts.oidc.DirectoryOIDCBackend"
LDAP_BACKEND = "accounts.ldap.DirectoryLDAPBackend"
PERMISSIONS_BACKEND = "accounts.backends.RolePermissionsBackend"
LDAP_ID_ATTRIBUTES = ("entryUUID", "objectGUID")
LDAP_GROUP_TYPES = (
    "group_of_names",
    "nested_group_of_names",
    "active_directory",
    "nested_active_directory",
    "posix",
)


def _required(name: str) -> str:
    value = env_optional_str(name)
    if value is None:
        raise ImproperlyConfigured(f"{PREFIX}{name} is required when its sign-in method is on")
    return value


def _url(name: str, *, schemes: tuple[str, ...]) -> str:
    value = _required(name).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} must be a {' or '.join(schemes)} URL")
    return value


def _ca_file(name: str) -> str | None:
    """A company CA's PEM file for TLS to an internal server; None: the system's CAs."""
    path = env_optional_str(name)
    if path is not None and not Path(path).is_file():
        raise ImproperlyConfigured(f"{PREFIX}{name}={path!r} is not a readable file")
    return path


def sign_in_settings(*, debug: bool) -> dict[str, Any]:
    local, oidc, ldap = (
        env_bool("AUTH_LOCAL", True),
        env_bool("AUTH_OIDC", False),
        env_bool("AUTH_LDAP", False),
    )
    if not (local or oidc or ldap):
        raise ImproperlyConfigured(
            f"{PREFIX}AUTH_LOCAL, {PREFIX}AUTH_OIDC and {PREFIX}AUTH_LDAP are all off: nobody could sign in"
        )
    try:
        group_map = group_map_parse(env_optional_str("GROUP_MAP"))
    except GroupMapError as exc:
        raise ImproperlyConfigured(f"{PREFIX}GROUP_MAP {exc}") from None
    values: dict[str, Any] = {
        "AUTH_LOCAL": local,
        "AUTH_OIDC": oidc,
        "AUTH_LDAP": ldap,
        "GROUP_MAP": group_map,
        # The throttle first (it refuses a locked-out account or address), then each method on.
        # ModelBackend also grants the roles' permissions; without it, a backend that only does.
        "AUTHENTICATION_BACKENDS": ["accounts.throttle.WebLoginThrottle"]
        + [
            backend
            for backend, on in ((LOCAL_BACKEND, local), (OIDC_BACKEND, oidc), (LDAP_BACKEND, ldap))
            if on
        ]
        + ([] if local else [PERMISSIONS_BACKEND]),
    }
    if oidc:
        values.update(_oidc_settings(debug=debug))
    if ldap:
        values.update(_ldap_settings())
    return values


def _oidc_settings(*, debug: bool) -> dict[str, Any]:
    # Plain http only by choice (a lab provider, the tests' own): tokens would cross in clear.
    allow_http = debug or env_bool("OIDC_ALLOW_HTTP", False)
    issuer = _url("OIDC_ISSUER", schemes=("https", "http") if allow_http else ("https",))
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_PROVIDER_NAME": env_str("OIDC_PROVIDER_NAME", "your company account"),
        "OIDC_RP_CLIENT_ID": _required("OIDC_CLIENT_ID"),
        "OIDC_RP_CLIENT_SECRET": _required("OIDC_CLIENT_SECRET"),
        "OIDC_RP_SCOPES": env_str("OIDC_SCOPES", "openid profile email"),
        "OIDC_RP_SIGN_ALGO": env_choice(
            "OIDC_SIGN_ALGO", "RS256", ("RS256", "RS384", "RS512", "ES256", "ES384")
        ),
        # Entra ID's stable, tenant-wide id is `oid`; most providers' is `sub`.
        "OIDC_SUBJECT_CLAIM": env_str("OIDC_SUBJECT_CLAIM", "sub"),
        "OIDC_USERNAME_CLAIM": env_str("OIDC_USERNAME_CLAIM", "preferred_username"),
        "OIDC_GROUPS_CLAIM": env_str("OIDC_GROUPS_CLAIM", "groups"),
        "OIDC_CLOCK_SKEW_SECONDS": env_int("OIDC_CLOCK_SKEW_SECONDS", 60, minimum=0, maximum=600),
        "OIDC_TIMEOUT": env_float("OIDC_TIMEOUT", 5.0, minimum=0.1, maximum=60.0),
        # requests (the library) and httpx (discovery) take a CA bundle's path as `verify`.
        "OIDC_VERIFY_SSL": _ca_file("OIDC_CA_FILE") or True,
        "OIDC_USE_PKCE": True,
        "OIDC_USE_NONCE": True,
        "OIDC_STORE_ID_TOKEN": True,
        # How long a sign-in holds before the next page load re-checks it at the provider.
        "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS": 60
        * env_int(
            "OIDC_SESSION_REFRESH_MINUTES", 15, minimum=1, maximum=24 * 60
        ),  # the hint for ending the provider's session at logout
        "OIDC_CALLBACK_CLASS": "accounts.oidc.DirectoryOIDCCallbackView",
        "OIDC_AUTHENTICATE_CLASS": "accounts.oidc.DirectoryOIDCAuthenticateView",
        "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/?sso=failed",
    }


def _ldap_options(*, timeout: float, ca_file: str | None) -> dict[int, Any]:
    """Options for each LDAP connection, in the order they are set: with a company CA, the TLS
    context is rebuilt last (OPT_X_TLS_NEWCTX) so the CA file takes effect."""
    import ldap

    options: dict[int, Any] = {ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout}
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0
    return options


def _ldap_settings() -> dict[str, Any]:
    import ldap
    from django_auth_ldap import config as ldap_config

    user_filter = env_str("LDAP_USER_FILTER", "(uid=%(user)s)")
    if "%(user)s" not in user_filter:
        raise ImproperlyConfigured(f"{PREFIX}LDAP_USER_FILTER must contain %(user)s")
    # Disabled accounts never match: sign-in is refused and deprovisioning finds them gone.
    active_filter = env_str("LDAP_ACTIVE_FILTER", "")
    search_filter = f"(&{user_filter}{active_filter})" if active_filter else user_filter
    group_type = env_choice("LDAP_GROUP_TYPE", "nested_group_of_names", LDAP_GROUP_TYPES)
    group_types = {
        "group_of_names": (ldap_config.GroupOfNamesType, "(objectClass=groupOfNames)"),
        "nested_group_of_names": (ldap_config.NestedGroupOfNamesType, "(objectClass=groupOfNames)"),
        "active_directory": (ldap_config.ActiveDirectoryGroupType, "(objectClass=group)"),
        "nested_active_directory": (ldap_config.NestedActiveDirectoryGroupType, "(objectClass=group)"),
        "posix": (ldap_config.PosixGroupType, "(objectClass=posixGroup)"),
    }
    group_class, group_filter = group_types[group_type]
    # The entries' immutable id: accounts are keyed by it (accounts/ldap.py) and the group map may
    # name groups by it. An operational attribute in OpenLDAP: asked for by name.
    id_attribute = env_choice(
        "LDAP_ID_ATTRIBUTE",
        "objectGUID" if "active_directory" in group_type else "entryUUID",
        LDAP_ID_ATTRIBUTES,
    )
    entry_attributes = ["*", id_attribute]
    user_base = _required("LDAP_USER_SEARCH_BASE")
    timeout = env_float("LDAP_TIMEOUT", 5.0, minimum=0.1, maximum=60.0)
    server_uri = _url("LDAP_SERVER_URI", schemes=("ldap", "ldaps"))
    start_tls = env_bool("LDAP_START_TLS", False)
    if server_uri.startswith("ldap:") and not start_tls and not env_bool("LDAP_ALLOW_PLAIN", False):
        # Every sign-in sends the user's password in a bind: never in clear unless asked for.
        raise ImproperlyConfigured(
            f"{PREFIX}LDAP_SERVER_URI={server_uri!r} would send directory passwords in clear: use ldaps://, "
            f"set {PREFIX}LDAP_START_TLS=true, or (a lab directory only) {PREFIX}LDAP_ALLOW_PLAIN=true"
        )
    return {
        "AUTH_LDAP_SERVER_URI": server_uri,
        "AUTH_LDAP_BIND_DN": _required("LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": _required("LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_USER_SEARCH": ldap_config.LDAPSearch(
            user_base, ldap.SCOPE_SUBTREE, search_filter, entry_attributes
        ),
        "AUTH_LDAP_USER_ATTRLIST": entry_attributes,
        "AUTH_LDAP_GROUP_SEARCH": ldap_config.LDAPSearch(
            env_str("LDAP_GROUP_SEARCH_BASE", user_base),
            ldap.SCOPE_SUBTREE,
            group_filter,
            entry_attributes,
        ),
        "AUTH_LDAP_GROUP_TYPE": group_class(),
        "AUTH_LDAP_CONNECTION_OPTIONS": _ldap_options(timeout=timeout, ca_file=_ca_file("LDAP_CA_FILE")),
        # No name, e-mail or other attribute is copied: the account needs only its username.
        "AUTH_LDAP_USER_ATTR_MAP": {},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": False,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,  # groups are read at every sign-in
        "LDAP_DEPROVISION_MINUTES": env_int("LDAP_DEPROVISION_MINUTES", 15, minimum=1, maximum=1440),
        "LDAP_USER_SEARCH_FILTER": search_filter,
        "LDAP_USER_SEARCH_BASE": user_base,
        "LDAP_ID_ATTRIBUTE": id_attribute,
    }
