# At the end of proj/settings.py
PAGERO_OAUTH |= {"API_RETRIES": 2, "API_RETRY_AFTER_MAX": 10}
