"""The SMTP task: send one mail (text and/or HTML) with the standard library's smtplib."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from tether.runner import flow_api
from tether.runner.tasks import TaskFailed, optional, required, unknown_inputs

KNOWN = {
    "smtp_host",
    "host",
    "smtp_port",
    "port",
    "login",
    "user",
    "username",
    "password",
    "use_tls",
    "starttls",
    "ssl",
    "ca_certificate",
    "verify",
    "timeout",
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
}


def perform(inputs: dict[str, Any], this: flow_api.Execution) -> dict[str, Any]:
    """Send the mail; outputs the recipients, those refused, and the Message-ID."""
    unknown_inputs(inputs, KNOWN)
    message = _message(inputs)
    recipients = [a for field in ("to", "cc", "bcc") for a in _addresses(inputs.get(field))]
    if not recipients:
        raise TaskFailed("the input 'to' is required")
    host = str(required(inputs, "smtp_host", "host"))
    is_ssl = bool(optional(inputs, "ssl", default=False))
    port = int(optional(inputs, "smtp_port", "port", default=465 if is_ssl else 25))
    timeout = float(optional(inputs, "timeout", default=30))
    try:
        refused = _send(inputs, message, recipients, host, port, is_ssl, timeout)
    except smtplib.SMTPResponseException as exc:
        raise TaskFailed(f"{host}:{port} answered {exc.smtp_code} {_text(exc.smtp_error)}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise TaskFailed(
            f"{host}:{port} refused every recipient: {_refusals(exc.recipients)}"
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TaskFailed(f"{host}:{port}: {exc or type(exc).__name__}") from exc
    this.log(f"mail sent through {host}:{port} to {len(recipients) - len(refused)} recipients")
    return {
        "message_id": message["Message-ID"],
        "recipients": recipients,
        "refused": {a: list(r) for a, r in _decoded(refused).items()},
    }


def _send(
    inputs: dict[str, Any],
    message: EmailMessage,
    recipients: list[str],
    host: str,
    port: int,
    is_ssl: bool,
    timeout: float,
) -> dict[str, tuple[int, bytes]]:
    context = _tls_context(inputs)
    client: smtplib.SMTP
    if is_ssl:
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo_or_helo_if_needed()
        if not is_ssl and optional(inputs, "use_tls", "starttls", default=True):
            if not client.has_extn("starttls"):
                raise TaskFailed(
                    f"{host}:{port} does not offer STARTTLS; give use_tls=False to send "
                    "without encryption"
                )
            client.starttls(context=context)
            client.ehlo()
        login = optional(inputs, "login", "username", "user")
        if login is not None:
            client.login(str(login), str(optional(inputs, "password", default="")))
        return client.send_message(message, to_addrs=recipients)


def _message(inputs: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = str(required(inputs, "from", "sender", "login"))
    for header, field in (("To", "to"), ("Cc", "cc"), ("Reply-To", "reply_to")):
        if inputs.get(field):
            message[header] = ", ".join(_addresses(inputs[field]))
    message["Subject"] = str(optional(inputs, "subject", default=""))
    message["Message-ID"] = make_msgid(domain=socket.getfqdn() or "tether")
    text, html = inputs.get("text"), inputs.get("html")
    if text is None and html is None:
        raise TaskFailed("give the mail's body as text, html, or both")
    message.set_content(str(text if text is not None else ""))
    if html is not None:
        if text is None:
            message.set_content(str(html), subtype="html")
        else:
            message.add_alternative(str(html), subtype="html")
    return message


def _addresses(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [a.strip() for a in value.split(",") if a.strip()]
    return [str(a) for a in value]


def _tls_context(inputs: dict[str, Any]) -> ssl.SSLContext:
    ca = inputs.get("ca_certificate")
    context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    if optional(inputs, "verify", default=True) is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _decoded(refused: dict[str, tuple[int, bytes]]) -> dict[str, tuple[int, str]]:
    return {a: (code, _text(text)) for a, (code, text) in refused.items()}


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{a}: {code} {text}" for a, (code, text) in _decoded(refused).items())
