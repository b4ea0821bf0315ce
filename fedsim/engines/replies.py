"""Running a ClientApp on one message, with every failure turned into an error reply."""

from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp

from fedsim.flower_internals import ErrorCode


def error_reply(message: Message, code: int, reason: str) -> Message:
    """The reply a real SuperNode sends when it cannot answer ``message``."""
    return Message(Error(code=code, reason=reason), reply_to=message)


def run_client_app(client_app: ClientApp, message: Message, context: Context) -> Message:
    """The ClientApp's reply to ``message``; an exception becomes an error reply."""
    try:
        return client_app(message, context)
    except Exception as error:  # pylint: disable=broad-exception-caught
        return error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(error).__name__}: {error}")
