"""What every app shares at run time: metrics, tracing, logs, middleware, health checks, the
socket origin check and permission re-check, and the production Daphne entry point."""
