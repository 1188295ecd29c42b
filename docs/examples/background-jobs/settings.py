# At the end of proj/settings.py: Redis as the broker (the celery extra installs its client)
CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
