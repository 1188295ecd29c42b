# At the end of proj/urls.py
from invoices import api, class_views, protected

urlpatterns += [
    path("token/", protected.token_info),
    path("report/", protected.report),
    path("invoices-cbv/", class_views.InvoicesView.as_view()),
    path("api/pagero/documents/", api.DocumentList.as_view()),
]
