"""Mount the mock Pagero server: ``path("mock-pagero/", include("django_pagero_oauth.testing.urls"))``.

For development and demos only; see :mod:`django_pagero_oauth.testing.views`.
"""

from django.urls import re_path

from .views import mock_pagero

app_name = "pagero_mock"

urlpatterns = [re_path(r"^(?P<path>.*)$", mock_pagero, name="mock")]
