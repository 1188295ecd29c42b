from django.urls import path

from . import views

urlpatterns = [
    path("login-only/", views.login_only),
    path("pagero/", views.pagero_protected),
    path("pagero/api/", views.pagero_api),
    path("authlib/api/", views.authlib_api),
]
