from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PageroOAuthConfig(AppConfig):
    name = "django_pagero_oauth"
    label = "django_pagero_oauth"
    verbose_name = _("Pagero Online connections")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete, pre_save

        from . import checks
        from .revocation import revoke_on_user_delete
        from .signin import unlink_on_password_change

        checks.register()
        # Every sender, each receiver keeping to users: Django sends the instance's class, so
        # sender=AUTH_USER_MODEL would miss saves and deletes through a proxy of it.
        pre_delete.connect(
            revoke_on_user_delete, dispatch_uid="django_pagero_oauth.revoke_on_user_delete"
        )
        pre_save.connect(
            unlink_on_password_change, dispatch_uid="django_pagero_oauth.unlink_on_password_change"
        )
