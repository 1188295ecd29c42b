from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PageroOAuthConfig(AppConfig):
    name = "django_pagero_oauth"
    label = "django_pagero_oauth"
    verbose_name = _("Pagero Online connections")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import pre_delete, pre_save

        from . import checks
        from .signin import unlink_on_password_change
        from .tokens import revoke_on_user_delete

        checks.register()
        # Deleting a user revokes their refresh token at Pagero (with REVOKE_URL), after commit.
        pre_delete.connect(
            revoke_on_user_delete,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="django_pagero_oauth.revoke_on_user_delete",
        )
        # A password change unlinks the user's Pagero identities, as it ends their sessions.
        pre_save.connect(
            unlink_on_password_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="django_pagero_oauth.unlink_on_password_change",
        )
