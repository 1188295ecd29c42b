# invoices/pagero.py
from django_pagero_oauth import aget_valid_token, get_valid_token
from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroUnavailable


def publicid_of(user):
    try:
        token = get_valid_token(user)  # PageroToken; token.access_token is valid now
    except PageroAuthorizationRequired:
        return None  # the user must connect (again)
    except PageroUnavailable:
        raise  # transient: try again later
    return token.publicid


async def apublicid_of(user):
    token = await aget_valid_token(user)  # the same, from async code
    return token.publicid


def after_a_401(user):
    return get_valid_token(user, force_refresh=True)  # e.g. after the API answered 401
