# invoices/views.py
from django.shortcuts import render

from django_pagero_oauth import get_client
from django_pagero_oauth.decorators import pagero_token_required


def home(request):
    return render(request, "home.html")


@pagero_token_required
def invoices(request):
    client = get_client(request.user, token=request.pagero_token)
    response = client.get("v1/documents", params={"limit": 50})
    response.raise_for_status()
    return render(request, "invoices.html", {"documents": response.json()})
