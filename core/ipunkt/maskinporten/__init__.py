"""Maskinporten: the JWT-bearer grant client (with Altinn's token exchange) and its fake."""
