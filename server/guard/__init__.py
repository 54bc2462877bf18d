"""Defences at the edge: the client's address through trusted proxies, limits per address,
rate limits and the sign-in throttle, and the security headers of every response."""
