"""Background jobs: work that takes long runs in worker processes, never in the API process.

A job is a row of our own ``jobs`` table (state, progress, per-item results, error), so that it
outlives any connection and any worker; the files of an ingest job wait in ``job_files`` until
their results are stored. The queue is procrastinate, a PostgreSQL-backed task queue: the API
defers a job in the same transaction that records it, and workers on any machine against the
same database fetch it, heartbeat while they run it, and take over the jobs of a worker that
went silent. Modules:

- ``store``: the ``jobs`` and ``job_files`` tables (create, read, page, progress, cancel).
- ``queue``: the procrastinate side (its schema, the task, the retry rules).
- ``ingest``: what a worker does with an ingest job, file by file.
- ``worker``: the worker loop (``rag worker``), with takeover of stalled jobs.
- ``retention``: the workers' periodic deletion of jobs that ended long ago.
- ``processes``: the worker processes ``rag serve`` starts, restarts and stops with itself.
- ``events``: following one job as it changes (PostgreSQL LISTEN/NOTIFY).
"""
