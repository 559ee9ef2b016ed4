"""The wire: the only code that imports requests or urllib3 (client, streams, SSE, bounded reads,
retries, base URLs, HTTP status to typed error)."""
