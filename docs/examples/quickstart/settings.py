# At the end of proj/settings.py
import os

INSTALLED_APPS += [
    "django_pagero_oauth",
    "invoices",  # your app (python manage.py startapp invoices)
]

MIDDLEWARE += [
    # Optional; must come after AuthenticationMiddleware (check E003).
    "django_pagero_oauth.middleware.PageroTokenMiddleware",
]

# Django's ModelBackend, but the user's query also brings the Pagero token: a protected
# request then makes no query of its own (check I001 suggests it).
AUTHENTICATION_BACKENDS = ["django_pagero_oauth.backends.PageroModelBackend"]

PAGERO_OAUTH = {
    # Empty when unset: check E001 then says which one is missing.
    "CLIENT_ID": os.environ.get("PAGERO_CLIENT_ID", ""),
    "CLIENT_SECRET": os.environ.get("PAGERO_CLIENT_SECRET", ""),
    "REDIRECT_URI": "https://www.example.com/pagero/callback/",
}
