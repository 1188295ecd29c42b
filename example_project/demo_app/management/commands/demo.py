"""``manage.py demo``: set the example project up and run it.

Migrates, creates (or resets) the demo users, says which URL to open and who to log in as, then
runs the development server on 127.0.0.1. ``--no-server`` stops after the setup.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import models, transaction
from django.utils.translation import gettext as _

HOST = "127.0.0.1"

#: The mock's default company: signing in with Pagero as it logs in as the user ``demo``.
DEMO_PAGERO_SUBJECT = "demo-company"

#: username, password, is_staff, is_superuser, permissions ("app_label.codename")
DEMO_USERS: tuple[tuple[str, str, bool, bool, tuple[str, ...]], ...] = (
    ("demo", "demo", False, False, ()),
    ("admin", "admin", True, True, ()),
    ("viewer", "viewer", True, False, ("django_pagero_oauth.view_pagerotoken",)),
)


class Command(BaseCommand):
    help = _(
        "Set up the example project (migrate, create the demo users) and run the "
        "development server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help=_("Port to serve on (default: DEMO_PORT from the environment, else 8000)."),
        )
        parser.add_argument(
            "--noreload",
            action="store_true",
            help=_("Do not restart the server when code changes."),
        )
        parser.add_argument(
            "--no-server",
            action="store_true",
            help=_("Only set up (migrate, demo users); do not run the server."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port: int = options["port"] or settings.DEMO_PORT
        self.use_port(port)
        # runserver's autoreloader re-runs this command in a child process (RUN_MAIN=true):
        # the parent did the setup already.
        if os.environ.get("RUN_MAIN") != "true":
            self.set_up(verbosity=options["verbosity"])
            self.print_instructions(port)
        if options["no_server"]:
            return
        call_command("runserver", f"{HOST}:{port}", use_reloader=not options["noreload"])

    def use_port(self, port: int) -> None:
        """Serve on ``port``: the mock's URLs in ``PAGERO_OAUTH`` contain it."""
        if port == settings.DEMO_PORT:
            return
        os.environ["DEMO_PORT"] = str(port)  # for the autoreloader's child process
        settings.DEMO_PORT = port
        if settings.USE_MOCK_PAGERO:
            from demo_site.settings import mock_pagero_settings

            settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **mock_pagero_settings(port)}

    def set_up(self, *, verbosity: int) -> None:
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0))
        with transaction.atomic():
            for username, password, is_staff, is_superuser, permissions in DEMO_USERS:
                self.ensure_user(username, password, is_staff, is_superuser, permissions)
            if settings.USE_MOCK_PAGERO:
                self.link_demo_identity()

    def ensure_user(
        self,
        username: str,
        password: str,
        is_staff: bool,
        is_superuser: bool,
        permissions: tuple[str, ...],
    ) -> None:
        """Create the user, or reset an existing one to the documented password and rights."""
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            user = user_model(**{user_model.USERNAME_FIELD: username})
        if not user.check_password(password):
            # Only when needed: a new hash would log the user out of their open sessions.
            user.set_password(password)
        user.is_active = True
        user.is_staff = is_staff
        user.is_superuser = is_superuser
        user.save()
        user.user_permissions.set(
            [
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
                for app_label, codename in (name.split(".", 1) for name in permissions)
            ]
        )

    def link_demo_identity(self) -> None:
        """Make "Sign in with Pagero" as the mock's ``demo-company`` log in as ``demo``.

        Linking normally happens only through a verified id_token; the demo links the mock's
        default identity up front, so that the button works on the first click.
        """
        from django_pagero_oauth.conf import app_settings
        from django_pagero_oauth.models import PageroIdentity

        user_model = get_user_model()
        demo = user_model.objects.get(**{user_model.USERNAME_FIELD: "demo"})
        issuer = app_settings.ISSUER
        PageroIdentity.objects.filter(issuer=issuer).filter(
            models.Q(user=demo) | models.Q(subject=DEMO_PAGERO_SUBJECT)
        ).delete()
        PageroIdentity.objects.create(user=demo, issuer=issuer, subject=DEMO_PAGERO_SUBJECT)

    def print_instructions(self, port: int) -> None:
        url = f"http://{HOST}:{port}/"
        lines = [
            "",
            self.style.SUCCESS(_("The example project is ready.")),
            _("Open %(url)s and log in as demo / demo.") % {"url": url},
            _("Admin: %(url)sadmin/ as admin / admin, or viewer / viewer (may only view tokens).")
            % {"url": url},
        ]
        if settings.USE_MOCK_PAGERO:
            lines.append(
                _(
                    "No PAGERO_CLIENT_ID is set: Pagero is the mock server at "
                    "%(url)smock-pagero/ (its login page needs no password)."
                )
                % {"url": url}
            )
            lines.append(
                _(
                    "Or click Sign in with Pagero on the login page and approve as %(company)s: "
                    "that Pagero account is linked to demo."
                )
                % {"company": DEMO_PAGERO_SUBJECT}
            )
        else:
            lines.append(
                _("Pagero Online is used with client id %(client_id)s.")
                % {"client_id": settings.PAGERO_OAUTH.get("CLIENT_ID", "")}
            )
        self.stdout.write("\n".join(lines) + "\n")
