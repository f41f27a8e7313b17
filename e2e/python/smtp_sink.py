"""A real SMTP server (aiosmtpd) on loopback for the mail tests.

Usage: smtp_sink.py HOST PORT FILE. Each message received is appended to
FILE as one JSON line (envelope sender and recipients, the decoded subject
and plain-text body). Prints "ready" once it accepts connections and stops
when its stdin closes, so it never outlives the test that started it.
"""

import json
import sys

from aiosmtpd.controller import Controller
from email import message_from_bytes
from email.policy import default


class Sink:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "body": body.get_content() if body is not None else "",
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(Sink(path), hostname=host, port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
