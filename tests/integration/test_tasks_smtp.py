"""this.task('SMTP') against a real SMTP server on loopback that requires STARTTLS and AUTH."""

from __future__ import annotations

import email
import email.policy
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from tests.integration.connector_servers import Mailbox, smtp_server
from tests.support.workspace import ApiClient


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp(ca: trustme.CA, api: ApiClient) -> Iterator[tuple[int, Mailbox]]:
    api.set_setting("ca", ca.cert_pem.bytes().decode())
    with smtp_server(ca) as served:
        yield served


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def sender_flow(api: ApiClient, port: int, extra: str) -> dict[str, Any]:
    flow(
        api,
        "mailer",
        f"""
        def handler(system, this):
            task = this.task(
                'SMTP',
                smtp_host='127.0.0.1',
                smtp_port={port},
                ca_certificate=system.setting('ca').get('value'),
                subject='Report',
                to=['ops@example.org'],
                **{{'from': 'tether@example.org'}},
                {extra}
            )
            this.save(output_value=task.get('output_value'))
        """,
    )
    return api.run("mailer")


def test_a_mail_with_text_and_html_is_sent_over_starttls_with_a_login(
    api: ApiClient, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    parent = sender_flow(
        api,
        port,
        "login='mailer', password='mail-secret', text='plain body', html='<b>bold body</b>',"
        " cc='boss@example.org',",
    )
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert mailbox.logins == ["mailer"]
    [envelope] = mailbox.messages
    assert envelope.mail_from == "tether@example.org"
    assert sorted(envelope.rcpt_tos) == ["boss@example.org", "ops@example.org"]
    message = email.message_from_bytes(
        envelope.original_content or b"", policy=email.policy.default
    )
    assert message["Subject"] == "Report"
    assert message.get_body(("plain",)).get_content().strip() == "plain body"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content().strip() == "<b>bold body</b>"  # type: ignore[union-attr]
    out = parent["output_value"]
    assert out["refused"] == {}
    assert out["message_id"] == message["Message-ID"]
    [task] = api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert task["input_value"]["password"] == "********"


def test_a_wrong_password_fails_with_the_servers_answer(
    api: ApiClient, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    parent = sender_flow(api, port, "login='mailer', password='wrong', text='x',")
    assert parent["status"] == "ENDED_ERROR"
    assert "SMTP task failed" in parent["message"]
    assert "535" in parent["message"]  # the server's "authentication failed"
    assert mailbox.messages == []


def test_a_refused_recipient_is_reported_and_the_others_get_the_mail(
    api: ApiClient, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    parent = sender_flow(
        api, port, "login='mailer', password='mail-secret', text='x', bcc='nobody@example.org',"
    )
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert list(parent["output_value"]["refused"]) == ["nobody@example.org"]
    assert parent["output_value"]["refused"]["nobody@example.org"][0] == 550
    assert mailbox.messages[0].rcpt_tos == ["ops@example.org"]


def test_without_starttls_the_server_refuses_and_says_why(
    api: ApiClient, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    parent = sender_flow(api, port, "use_tls=False, text='x',")
    assert parent["status"] == "ENDED_ERROR"
    assert "530" in parent["message"] and "STARTTLS" in parent["message"], parent["message"]
    assert mailbox.messages == []


def test_a_flow_cannot_redirect_an_smtp_connector_through_an_alias(api: ApiClient) -> None:
    api.ok(
        "POST",
        "/connector",
        json={
            "name": "relay",
            "type": "SMTP",
            "host": "127.0.0.1",
            "credentials": {"password": "p"},
        },
    )
    flow(
        api,
        "redirect",
        """
        import flow_api

        def handler(system, this):
            try:
                this.connect('relay', smtp_host='mail.elsewhere.example', to='a@b', text='x')
            except flow_api.InvalidInputError as exc:
                this.set_output('refused', str(exc))
        """,
    )
    out = api.run("redirect")["output_value"]
    assert "connector 'relay' sets smtp_host" in out["refused"]
    assert (
        api.ok("GET", "/execution", params={"flow_name": "redirect"})[0]["status"]
        == "ENDED_SUCCESS"
    )
