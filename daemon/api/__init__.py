"""HTTP only: parsing, replies, middleware (errors, audit, peer credentials) and the route groups."""
