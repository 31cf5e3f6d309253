"""Guard rails: command classification from a real shell grammar, policies, approvals."""
