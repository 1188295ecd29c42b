# invoices/async_views.py
from django.http import JsonResponse

from django_pagero_oauth import aget_client
from django_pagero_oauth.decorators import pagero_token_required


@pagero_token_required
async def invoices(request):
    user = await request.auser()  # request.user would query from the event loop
    async with aget_client(user, token=request.pagero_token) as client:
        response = await client.get("v1/documents", params={"limit": 50})
    response.raise_for_status()
    return JsonResponse(response.json())
