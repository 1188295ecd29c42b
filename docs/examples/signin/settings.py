# At the end of proj/settings.py (with PageroModelBackend, or any ModelBackend, in AUTHENTICATION_BACKENDS)
PAGERO_OAUTH |= {
    "ISSUER": "https://sso.pageroonline.com",  # the iss value Pagero sends
    "SIGN_IN_ENABLED": True,
    # "JWKS_URL": "...",          # only if discovery at ISSUER does not work
    # "SIGN_IN_CREATE_USERS": True,
}
