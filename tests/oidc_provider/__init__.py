"""A throwaway OpenID Connect provider for the sign-in tests: django-oauth-toolkit's OIDC
provider in a Django project of its own, run as its own process on a free port (see
`tests.directory_servers.OIDCProvider`). It is a real provider: authorization code flow with
PKCE, RS256 ID tokens, JWKS, discovery, userinfo and RP-initiated logout, over real HTTP."""
