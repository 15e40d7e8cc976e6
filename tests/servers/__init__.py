"""Loopback servers that speak the real wire protocols (Slack, EWS, Graph) for the tests."""
