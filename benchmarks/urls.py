from django.urls import path

from . import views

urlpatterns = [
    path("login-only/", views.login_only),
    path("pagero/", views.pagero_protected),
    path("pagero/api/", views.pagero_api),
    path("authlib/api/", views.authlib_api),
    path("pagero-async/", views.pagero_protected_async),
    path("unrelated-async/", views.unrelated_async),
]
