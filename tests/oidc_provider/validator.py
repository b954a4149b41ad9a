from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsValidator(OAuth2Validator):
    """Puts the user's groups (as a directory would: Keycloak's and Entra's `groups` claim) and
    username into the ID token and userinfo."""

    oidc_claim_scope = None  # every claim below, whatever the scopes

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "preferred_username": user.username,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    # prompt=none (a relying party's silent re-check). django-oauth-toolkit answers a signed-out
    # user with login_required itself; a signed-in one gets here.
    def validate_silent_login(self, request: Any) -> bool:
        return True

    def validate_silent_authorization(self, request: Any) -> bool:
        return True  # the test clients are registered with skip_authorization
