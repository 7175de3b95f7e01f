"""A live batchyard for the workloads: a served engine in a subprocess, and
small HTTP and WebSocket clients for it."""
