# At the end of proj/urls.py
from invoices import async_views

urlpatterns += [path("api/invoices/", async_views.invoices)]
