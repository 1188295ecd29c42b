from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PageroOAuthConfig(AppConfig):
    name = "django_pagero_oauth"
    label = "django_pagero_oauth"
    verbose_name = _("Pagero Online connections")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks

        checks.register()
