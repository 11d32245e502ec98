"""The console: server-rendered pages for security reviewers and admins, at ``/console``.

It is a sub-application of the gateway with its own sign-in (an OIDC
authorization-code flow with PKCE, or a pasted token for the development
issuer), sessions in the database, CSRF tokens on every form and a strict
Content-Security-Policy. Every action goes through the same services as the
API, so it is audited exactly as the API would audit it.
"""
