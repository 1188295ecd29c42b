"""URLs of the plain site: its two pages, Django's login pages, the package's URLs, the admin.

Static files (the admin's CSS) are served by Django itself: a test site has no web server in
front of it, and ``DEBUG`` is off as in production.
"""

from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoices, name="invoices"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("pagero/", include("django_pagero_oauth.urls")),
    path("admin/", admin.site.urls),
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
