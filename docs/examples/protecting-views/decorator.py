# invoices/protected.py
from django.http import HttpResponse

from django_pagero_oauth.decorators import pagero_token_required


@pagero_token_required
def token_info(request):
    token = request.pagero_token  # a PageroToken, access token valid for REFRESH_LEEWAY s
    return HttpResponse(f"Connected to Pagero as {token.publicid}")


# With a different answer for this view: a callable (request, exc) -> HttpResponse.
def my_handler(request, exc):
    return HttpResponse("Connect to Pagero first.", status=403)


@pagero_token_required(response_handler=my_handler)
def report(request):
    return HttpResponse("The report")
