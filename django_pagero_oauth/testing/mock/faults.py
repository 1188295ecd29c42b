"""The fault switches: :class:`Fault` makes one endpoint misbehave once (or ``times`` times).

A fault answers with an error, answers slowly, drops the connection, changes fields of a
normally processed answer (``OMIT`` removes one) or breaks the ``id_token``
(:data:`~.oidc.ID_TOKEN_FAULTS`). :meth:`.app.MockPagero.handle` finds and applies them; the
``POST /_mock/fault`` control endpoint builds one from a form (:func:`_parse_fault_form`).

A new switch is a field of :class:`Fault` (checked in ``__post_init__``; part of
``short_circuits`` if it replaces the answer), its effect where the answer is made
(:meth:`.app.MockPagero.handle` or the endpoint it concerns), and its form field in
:func:`_parse_fault_form`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any, Literal

from .http import _JSON, MockResponse, _Params, _single
from .oidc import ID_TOKEN_FAULTS

FAULT_ENDPOINTS = ("token", "revoke", "api", "authorize", "jwks", "discovery")
#: The switches that concern one endpoint only.
_ONLY_FOR = {"grant_type": "token", "revoke_grant": "revoke", "id_token": "token"}


class _Omit(enum.Enum):
    OMIT = "OMIT"

    def __repr__(self) -> str:
        return "OMIT"


#: Sentinel for :attr:`Fault.iss`: leave ``iss`` out of the authorization response.
OMIT = _Omit.OMIT


@dataclass
class Fault:
    """A one-off (or ``times``-off) misbehaviour of one endpoint.

    ``status``, ``body``, ``headers``, ``delay`` and ``drop`` short-circuit the request: it is
    NOT processed (a refresh token is not consumed) and the fault's answer is sent instead,
    unless ``process`` is true. ``omit_refresh_token`` and ``iss`` modify a normally
    processed answer. A request matched by a fault is counted in ``counts`` all the same.
    """

    #: ``"token"``, ``"revoke"``, ``"api"`` or ``"authorize"`` (the approve/deny redirect).
    endpoint: str
    #: For ``endpoint="token"``: only match requests with this ``grant_type``.
    grant_type: str | None = None
    #: Answer with this status (default 503 when only ``delay``/``headers`` are given).
    status: int | None = None
    #: Answer with this body (default: a JSON OAuth error when the status is >= 400).
    body: bytes | str | None = None
    content_type: str = _JSON
    #: Extra response headers, e.g. ``[("Retry-After", "30")]``.
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: Answer after this many (real) seconds, to test client timeouts.
    delay: float = 0.0
    #: Close the connection without an answer.
    drop: bool = False
    #: Process normally but leave ``refresh_token`` out (the old one stays valid).
    omit_refresh_token: bool = False
    #: Process normally (codes and refresh tokens are used up, new tokens issued), then change
    #: these fields of the JSON answer; ``OMIT`` removes a field. For off-spec answers
    #: that still carry real tokens, e.g. ``{"expires_in": "600", "scope": OMIT}``.
    fields: dict[str, Any] | None = None
    #: For ``endpoint="authorize"``: ``OMIT`` (or ``None``) leaves ``iss`` out, a string
    #: is sent instead of the real issuer; ``...`` (the default) changes nothing.
    iss: str | Literal[_Omit.OMIT] | EllipsisType | None = ...
    #: For ``endpoint="revoke"``: revoking a live refresh token revokes the whole grant, every
    #: token this client holds for the same user (``publicid``), those of later logins too, as
    #: RFC 7009 2.1 allows a server to do. The request is processed normally otherwise.
    revoke_grant: bool = False
    #: For ``endpoint="token"``: break the ``id_token`` this way (one of
    #: :data:`~.oidc.ID_TOKEN_FAULTS`); the request is processed normally otherwise.
    id_token: str | None = None
    #: How many matching requests this fault applies to.
    times: int = 1
    #: Process the request (consume codes/tokens) *and then* answer with the fault: the
    #: server did the work but the client never learns the result (e.g. with ``drop``).
    process: bool = False
    #: Hold the request until :meth:`~.state.MockPageroState.release_held` (or
    #: :data:`~.state.HOLD_LIMIT` seconds); :meth:`~.state.MockPageroState.wait_held` returns
    #: once it is held. Not a short-circuit: the request is then processed and answered as
    #: usual. With ``process``, it is processed first (a refresh token is spent, a new one
    #: issued) and only its answer is held; without, nothing is spent before the release.
    hold: bool = False

    def __post_init__(self) -> None:
        if self.endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"Fault.endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        for name, endpoint in _ONLY_FOR.items():
            if getattr(self, name) not in (None, False) and self.endpoint != endpoint:
                raise ValueError(f'Fault.{name} only applies to endpoint="{endpoint}"')
        if self.times < 1:
            raise ValueError("Fault.times must be at least 1")
        if self.delay < 0:
            raise ValueError("Fault.delay cannot be negative")
        if self.id_token is not None and self.id_token not in ID_TOKEN_FAULTS:
            raise ValueError(f"Fault.id_token must be one of {', '.join(ID_TOKEN_FAULTS)}")

    @property
    def short_circuits(self) -> bool:
        """Whether this fault replaces the normal answer."""
        return bool(
            self.status is not None
            or self.body is not None
            or self.headers
            or self.delay > 0
            or self.drop
        )

    def matches(self, endpoint: str | None, grant_type: str | None) -> bool:
        if endpoint != self.endpoint:
            return False
        return self.grant_type is None or self.grant_type == grant_type

    def response(self, endpoint: str) -> MockResponse:
        """The answer this fault sends instead of the real one."""
        if self.drop:
            return MockResponse(0, [], b"", drop_connection=True, delay=self.delay)
        status = self.status
        if status is None:
            status = 200 if self.body is not None else 503
        body = self.body
        if body is None and status >= 400:
            error = _default_error(endpoint, status)
            body = json.dumps({"error": error, "error_description": "injected fault"})
        raw = body.encode() if isinstance(body, str) else (body or b"")
        headers = [("Content-Type", self.content_type), *self.headers] if raw else [*self.headers]
        return MockResponse(status, headers, raw, delay=self.delay)


def _default_error(endpoint: str, status: int) -> str:
    if status == 401:
        return "invalid_token" if endpoint == "api" else "invalid_client"
    if status == 400:
        return "invalid_request"
    if status in (429, 503):
        return "temporarily_unavailable"
    return "server_error"


def _with_fields(response: MockResponse, fields: dict[str, Any]) -> MockResponse:
    """``response`` (a JSON object answer) with ``fields`` replaced or, for OMIT, removed."""
    data = dict(response.json())
    for name, value in fields.items():
        if value is OMIT:
            data.pop(name, None)
        else:
            data[name] = value
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
    return MockResponse(response.status, headers, json.dumps(data).encode(), delay=response.delay)


def _parse_fault_form(form: _Params) -> Fault:
    """The :class:`Fault` that ``POST /_mock/fault`` describes with form fields named like
    its attributes; raises :class:`ValueError` for a bad one."""

    def flag(name: str) -> bool:
        return (_single(form, name) or "").lower() in ("1", "true", "yes", "on")

    status = _single(form, "status")
    iss: str | Literal[_Omit.OMIT] | EllipsisType | None = _single(form, "iss")
    if iss is None:
        iss = ...
    elif iss == "OMIT":
        iss = OMIT
    header_lines = form.get("header", [])
    # "field" lines are "name=<JSON value>" or "name=OMIT", like Fault.fields.
    fields: dict[str, Any] | None = None
    for line in form.get("field", []):
        name, _, raw = line.partition("=")
        fields = fields or {}
        fields[name.strip()] = OMIT if raw.strip() == "OMIT" else json.loads(raw)
    return Fault(
        endpoint=_single(form, "endpoint") or "",
        grant_type=_single(form, "grant_type"),
        status=int(status) if status else None,
        body=_single(form, "body"),
        content_type=_single(form, "content_type") or _JSON,
        headers=[_split_header(line) for line in header_lines],
        delay=float(_single(form, "delay") or 0),
        drop=flag("drop"),
        omit_refresh_token=flag("omit_refresh_token"),
        fields=fields,
        iss=iss,
        id_token=_single(form, "id_token"),
        revoke_grant=flag("revoke_grant"),
        times=int(_single(form, "times") or 1),
        process=flag("process"),
        hold=flag("hold"),
    )


def _split_header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"header must be 'Name: value', got {line!r}")
    return name.strip(), value.strip()
