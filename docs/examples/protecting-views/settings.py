# At the end of proj/settings.py: every URL under these needs a connection (PageroTokenMiddleware)
PAGERO_OAUTH["PROTECTED_PATHS"] = [r"^/invoices/", r"^/api/pagero/"]
