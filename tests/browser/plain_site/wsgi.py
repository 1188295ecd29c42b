"""WSGI entry point of the plain site (``gunicorn tests.browser.plain_site.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.browser.plain_site.settings")

application = get_wsgi_application()
