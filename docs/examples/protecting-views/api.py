# invoices/api.py
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from django_pagero_oauth import get_client
from django_pagero_oauth.contrib.rest_framework import HasPageroToken


class DocumentList(APIView):
    permission_classes = [IsAuthenticated, HasPageroToken]

    def get(self, request):
        client = get_client(request.user, token=request.pagero_token)
        return Response(client.get("v1/documents").json())
