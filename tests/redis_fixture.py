"""The tests' redis-server and worker processes (they live in the package: benchmarks use them too)."""

from nirbridge.connector.local_services import RedisServer, WorkerProcess, free_port

__all__ = ["RedisServer", "WorkerProcess", "free_port"]
