"""The wire format: one pydantic model per API request and reply, grouped by what they are about."""
