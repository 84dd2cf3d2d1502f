"""Outgoing messages: email over SMTP, SMS through a provider, webhooks with an SSRF guard."""
