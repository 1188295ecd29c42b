# proj/urls.py
from django.contrib import admin
from django.urls import include, path

from invoices import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pagero/", include("django_pagero_oauth.urls")),  # namespace "pagero_oauth"
    path("", views.home, name="home"),
    path("invoices/", views.invoices, name="invoices"),
]
