"""Every error tether raises on purpose, with its user-facing message.

The class docstring is the default message (formatted with the error's fields), so each
message is written once. HTTP status codes live in one table, ``HTTP_STATUS``.

    TetherError
    ├── InvalidInput                      400
    │   ├── MalformedJson
    │   ├── FlowScriptInvalid
    │   ├── FlowHandlerInvalid
    │   ├── InvalidKey
    │   ├── OutputsTooLarge
    │   ├── ConnectorInvalid
    │   ├── FormInvalid
    │   ├── AnswerInvalid
    │   └── LinkConfigInvalid
    │       └── LinkPolicyInvalid         422
    ├── Unauthenticated                   401
    │   ├── BadCredentials
    │   ├── SessionExpired
    │   └── EnvelopeRejected
    ├── Forbidden                         403
    │   ├── OwnerForbidden
    │   ├── OnwardRemoteRefused
    │   └── CrossSiteRequest
    ├── NotFound                          404
    │   ├── FlowNotFound
    │   ├── ExecutionNotFound
    │   ├── UserNotFound
    │   ├── SettingNotFound
    │   ├── FileNotFound
    │   ├── SyncConfigNotFound
    │   ├── ConnectorNotFound
    │   └── MessageNotFound
    ├── Conflict                          409
    │   ├── NameTaken
    │   ├── SettingLocked
    │   ├── ExecutionEnded
    │   ├── MessageClosed
    │   ├── RemoteWorkspaceUnusable
    │   ├── LastAdmin
    │   └── DialerLeaseLost
    ├── PayloadTooLarge                   413
    ├── TooManyLogins                     429
    ├── StoreUnavailable                  503
    │   └── StoreFull
    └── SettingsInvalid                   (at start: the server refuses to start)
        └── SandboxUnavailable
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """something went wrong in tether: {detail}"""

    kind = "error"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields = fields
        doc = (type(self).__doc__ or "").strip()
        self.message = message if message is not None else doc.format(**fields)
        super().__init__(self.message)


class InvalidInput(TetherError):
    """the request is invalid: {detail}"""

    kind = "invalid_input"


class MalformedJson(InvalidInput):
    """the request body is not valid JSON ({detail}): send a JSON document"""

    kind = "malformed_json"


class ValueNotStorable(InvalidInput):
    """a value cannot be stored ({detail}): send shorter text without NUL characters, and numbers within range"""


class FlowScriptInvalid(InvalidInput):
    """the script of flow '{name}' does not compile: line {line}: {detail}; fix the script and save again"""

    kind = "script_invalid"


class FlowScriptsRefused(InvalidInput):
    """nothing was saved: {count} of the scripts were refused: {details}"""

    kind = "scripts_invalid"


class FlowHandlerInvalid(InvalidInput):
    """flow '{name}' cannot run: {detail}; write 'def handler(system, this):' or 'def handler(system, this, inputs):' at the top level of the script"""

    kind = "handler_invalid"


class InvalidKey(InvalidInput):
    """{field} is not usable: {detail}"""

    kind = "invalid_key"


class OutputsTooLarge(InvalidInput):
    """the outputs would be {size} bytes of JSON, but an execution's outputs are at most {limit} bytes: keep large data in system.file(...) and put its name in the outputs"""


class ConnectorInvalid(InvalidInput):
    """{field}: {detail}"""

    kind = "invalid_connector"


class FormInvalid(InvalidInput):
    """the message's form is not usable: {detail}"""

    kind = "invalid_form"


class AnswerInvalid(InvalidInput):
    """the answer does not fit the form of message '{id}': {detail}; the message stays open"""

    kind = "invalid_answer"


class LinkConfigInvalid(InvalidInput):
    """{field}: {detail}"""

    kind = "invalid_sync_config"


class LinkPolicyInvalid(LinkConfigInvalid):
    """{field}: {detail}"""


class Unauthenticated(TetherError):
    """no valid token was sent: log in at POST /api/latest/auth/login and send 'Authorization: Bearer <token>'"""

    kind = "unauthenticated"


class BadCredentials(Unauthenticated):
    """user name or password is wrong, or the user is disabled"""


class SessionExpired(Unauthenticated):
    """the session has expired (too long idle or past its lifetime): log in again at POST /api/latest/auth/login"""

    kind = "session_expired"


class EnvelopeRejected(Unauthenticated):
    """the envelope was rejected"""

    kind = "rejected"

    def __init__(self, reason: str) -> None:
        # The reason goes to the log only: the answer must not help a prober.
        super().__init__()
        self.reason = reason


class Forbidden(TetherError):
    """your role '{role}' may not {action}: ask an organization admin"""

    kind = "forbidden"


class OwnerForbidden(Forbidden):
    """this execution runs with the rights of user '{owner}', who may not {action}: {detail}"""


class OnwardRemoteRefused(Forbidden):
    """this execution descends from one received over sync config '{name}', whose rule allow_onward_remote is off, so it may not start executions over other links: an organization admin of this workspace can turn allow_onward_remote on for '{name}'"""


class CrossSiteRequest(Forbidden):
    """the form was refused: it came from another site, or the page was too old; reload the page and send it again"""


class NotFound(TetherError):
    """{what} does not exist"""

    kind = "not_found"


class FlowNotFound(NotFound):
    """flow '{name}' does not exist: create it first or check the name"""


class ExecutionNotFound(NotFound):
    """execution '{id}' does not exist"""


class UserNotFound(NotFound):
    """user '{name}' does not exist"""


class SettingNotFound(NotFound):
    """setting '{name}' does not exist"""


class FileNotFound(NotFound):
    """file '{name}' does not exist"""


class SyncConfigNotFound(NotFound):
    """sync config '{name}' does not exist: create it under /api/latest/sync_config or check the name"""


class ConnectorNotFound(NotFound):
    """connector '{name}' does not exist: an admin creates it under /api/latest/connector, or check the name"""


class MessageNotFound(NotFound):
    """message '{id}' does not exist"""


class Conflict(TetherError):
    """{detail}"""

    kind = "conflict"


class NameTaken(Conflict):
    """a {what} named '{name}' already exists: pick another name or change the existing one"""


class SettingLocked(Conflict):
    """setting '{name}' is not locked by this execution: acquire() it before release()"""


class ExecutionEnded(Conflict):
    """execution '{id}' has already ended with status {status}"""


class MessageClosed(Conflict):
    """message '{id}' cannot be answered: {detail}"""


class RemoteWorkspaceUnusable(Conflict):
    """sync config '{name}' cannot run executions remotely: {detail}"""


class LastAdmin(Conflict):
    """'{name}' is the last enabled organization admin: make another user an organization admin first"""


class StoreConflict(Conflict):
    """the store refused the change: {detail}"""

    @property
    def is_unique_violation(self) -> bool:
        """Whether a primary key or unique constraint refused it (the same row, stored twice)."""
        return bool(self.fields.get("is_unique_violation"))


class DialerLeaseLost(Conflict):
    """this server no longer dials sync config '{name}': another server took its dialer over after epoch {epoch}, and answers to this one's requests are not applied"""


class PayloadTooLarge(TetherError):
    """the request body is larger than {limit} bytes: send less"""

    kind = "payload_too_large"


class TooManyLogins(TetherError):
    """too many failed logins {scope}: try again in {retry_after_s} seconds"""

    kind = "too_many_logins"


class StoreUnavailable(TetherError):
    """the workspace's database is unavailable: {detail}"""

    kind = "unavailable"


class StoreFull(StoreUnavailable):
    """the workspace's disk is full ({detail}): it takes no changes until space is freed on the volume that holds its data directory or database; reading still works"""

    kind = "store_full"


class SettingsInvalid(TetherError):
    """cannot start: {detail}"""

    kind = "settings_invalid"


class SandboxUnavailable(SettingsInvalid):
    """tether cannot confine executions here: {detail}; fix that, or start with --sandbox off (TETHER_SANDBOX=off) to run flows with the server's own powers"""


HTTP_STATUS: dict[type[TetherError], int] = {
    LinkPolicyInvalid: 422,
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    TooManyLogins: 429,
    StoreUnavailable: 503,
    TetherError: 500,
}


def http_status(error: TetherError) -> int:
    """The HTTP status that answers ``error``."""
    return status_of(type(error))


def status_of(error_class: type[TetherError]) -> int:
    """The HTTP status that answers errors of ``error_class``."""
    for cls in error_class.__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
