"""Running crm-contacts for a whole company (issue 22): Prometheus metrics (`metrics`),
the problems an admin must hear about (`problems`), the alerts that tell them (`alerts`),
and the health checks a load balancer or an orchestrator reads (`health`).

Each module is small and imported by the hot paths with one line: a sync records its
metrics in `Engine.sync`, a cycle in the scheduler's after-cycle hooks.
"""
