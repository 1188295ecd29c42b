"""URLs: ``path("pagero/", include("django_pagero_oauth.urls"))``, namespace ``pagero_oauth``."""

from django.urls import path

from . import views

app_name = "pagero_oauth"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("sign-in/", views.SignInView.as_view(), name="sign_in"),
    path("callback/", views.CallbackView.as_view(), name="callback"),
    path("link/", views.LinkIdentityView.as_view(), name="link_identity"),
    path("disconnect/", views.DisconnectView.as_view(), name="disconnect"),
]
