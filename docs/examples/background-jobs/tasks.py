# invoices/tasks.py (app.autodiscover_tasks() finds it)
from celery import shared_task
from django.contrib.auth import get_user_model

from django_pagero_oauth import get_client
from django_pagero_oauth.contrib.celery import retry_if_pagero_unavailable
from django_pagero_oauth.exceptions import PageroAuthorizationRequired


@shared_task(bind=True, max_retries=5)
def sync_documents(self, user_id):
    user = get_user_model().objects.get(pk=user_id)
    with retry_if_pagero_unavailable(self):
        try:
            response = get_client(user).get("v1/documents")
        except PageroAuthorizationRequired:
            return None  # the user must connect again (see the token_refresh_failed signal)
    response.raise_for_status()
    return len(response.json()["documents"])
