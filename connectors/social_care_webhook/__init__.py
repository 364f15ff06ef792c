"""Social care: case management webhooks (JSON over HTTPS, HMAC-signed)."""
