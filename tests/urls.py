from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pagero/", include("django_pagero_oauth.urls")),
    path("protected/", views.protected, name="protected"),
    path("protected-async/", views.protected_async, name="protected_async"),
    path("protected-cbv/", views.ProtectedView.as_view(), name="protected_cbv"),
    path("protected-cbv-async/", views.ProtectedAsyncView.as_view(), name="protected_cbv_async"),
    path("protected-by-middleware/", views.plain, name="middleware_protected"),
    path("api-data/", views.api_data, name="api_data"),
    path("plain/", views.plain, name="plain"),
]
