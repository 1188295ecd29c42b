"""Integrations with other frameworks; each module imports its framework, so import it only
when that framework is installed (the ``drf`` and ``celery`` extras):

- :mod:`.rest_framework`: ``HasPageroToken``, a Django REST framework permission class;
- :mod:`.celery`: the keep-alive task fanned out over Celery workers, and
  ``retry_if_pagero_unavailable`` for a project's own tasks.
"""
