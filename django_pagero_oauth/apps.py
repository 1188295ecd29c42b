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
        # Connected for every sender, each receiver keeping to instances of the user model:
        # Django sends the class of the saved (deleted) instance, so a receiver connected with
        # sender=AUTH_USER_MODEL would miss saves and deletes through a proxy of it.
        # Deleting a user revokes their refresh token at Pagero (with REVOKE_URL), after commit.
        pre_delete.connect(
            revoke_on_user_delete,
            dispatch_uid="django_pagero_oauth.revoke_on_user_delete",
        )
        # A password change unlinks the user's Pagero identities, as it ends their sessions.
        pre_save.connect(
            unlink_on_password_change,
            dispatch_uid="django_pagero_oauth.unlink_on_password_change",
        )
