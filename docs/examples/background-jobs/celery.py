# proj/celery.py
import os

from celery import Celery

from django_pagero_oauth.contrib.celery import keep_alive_schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.imports = [*app.conf.imports, "django_pagero_oauth.contrib.celery"]
app.conf.beat_schedule = {
    # daily at 03:17 (crontab fields as keyword arguments: keep_alive_schedule(hour="4"))
    "pagero-keep-alive": keep_alive_schedule(),
}
