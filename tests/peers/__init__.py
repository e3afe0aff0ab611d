"""Local stand-ins for external services, spoken to over real sockets by the real client code."""
