"""The development launcher: embedded PostgreSQL, Redis and llama.cpp, and the supervisor that
`make run` uses to keep Daphne, a Celery worker and beat running. Production does not use it."""
