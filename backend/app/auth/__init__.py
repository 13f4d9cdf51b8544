"""Access control: API keys with roles and collection grants, per-key rate limits, browser guards.

A key is ``rag_<id>_<secret>``, stored as an argon2 hash of the secret (``keys``, ``store``); the
``Authenticator`` turns a request's ``Authorization: Bearer`` header into a ``Caller`` that routers
check roles and collections against (``roles``); ``browser`` refuses requests addressed to a foreign
host name or sent by another origin's page. docs/security.md describes the whole.
"""
