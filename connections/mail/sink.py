"""`make run`'s local SMTP server: accepts every message and keeps it as an
`.eml` file under `settings.MAIL_DIR`, so nothing leaves the machine and the
admins' mail page (debug only) can show what was sent."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.utils import timezone

logger = logging.getLogger(__name__)


class KeepMessages:
    """aiosmtpd handler: write each message to `folder` as `<time>-<id>.eml`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        name = f"{timezone.now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        (self.folder / name).write_bytes(data)
        logger.info("kept a message to %s as %s", ", ".join(envelope.rcpt_tos), name)
        return "250 Message accepted for delivery"


def start(folder: Path, host: str, port: int) -> Controller:
    """Start the server in a thread (stop it with `.stop()`)."""
    controller = Controller(KeepMessages(folder), hostname=host, port=port)
    controller.start()
    return controller


def kept(folder: Path) -> list[Path]:
    """The kept messages, newest first."""
    return sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []
