# At the very end of proj/settings.py, for development: the bundled mock instead of Pagero
# (python -m django_pagero_oauth.testing.mock --port 8765 prints these lines).
from django_pagero_oauth.testing import mock_settings

PAGERO_OAUTH |= mock_settings("http://127.0.0.1:8765")
PAGERO_OAUTH["REDIRECT_URI"] = "http://127.0.0.1:8000/pagero/callback/"
