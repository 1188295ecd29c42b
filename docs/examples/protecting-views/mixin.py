# invoices/class_views.py
from django.views.generic import TemplateView

from django_pagero_oauth.mixins import PageroTokenRequiredMixin


class InvoicesView(PageroTokenRequiredMixin, TemplateView):
    template_name = "invoices.html"

    # Optional: answer differently for this view (exc is None for an anonymous user).
    def handle_no_pagero_token(self, request, exc):
        return super().handle_no_pagero_token(request, exc)
