"""URLs of the example project.

``/mock-pagero/`` is the mock Pagero server, mounted only while no Pagero credentials are
configured (and answering only with DEBUG on): never mount it in a real project.
"""

from demo_app import views
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoices, name="invoices"),
    path("api/invoices.json", views.invoices_json, name="invoices_json"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("pagero/", include("django_pagero_oauth.urls")),
    path("admin/", admin.site.urls),
]

if settings.USE_MOCK_PAGERO:
    urlpatterns.append(path("mock-pagero/", include("django_pagero_oauth.testing.urls")))
