"""Helpers for ``tests/test_concurrency_processes.py``: what runs in the *other* processes.

- :mod:`.settings`: the Django settings of every child process (the test run's database, the
  running mock server's URLs, one PostgreSQL ``application_name`` per process);
- :mod:`.wsgi` and :mod:`.gunicorn_conf`: the gunicorn server (workers report readiness);
- :mod:`.api_caller`: a ``multiprocessing`` ("spawn") child that calls the Pagero API;
- :mod:`.celery_app`: the Celery app of the real-worker test (``tests/contrib/``).
"""
