"""One Settings object for the whole platform (environment prefix ``CONSORTIA_``)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSORTIA_", extra="ignore")

    database_url: str = "sqlite:///./consortia.db"
    redis_url: str | None = None
    # Signing key for session cookies; generated once per installation when not given,
    # kept beside the database and never in the repository.
    secret_key: str | None = None
    secret_file: Path = Path("./.consortia-secret")
    huey_path: Path = Path("./consortia-jobs.db")
    upload_dir: Path = Path("./uploads")
    max_upload_bytes: int = Field(default=500 * 1024 * 1024, ge=1024)
    default_language: str = "zh-CN"
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    secure_cookies: bool = False
    consortium_name_zh: str = "广东省图书馆联盟"
    consortium_name_en: str = "Guangdong Library Consortium"
    # Outgoing mail (resource sharing's notices); no host: notices wait in ill_notices.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    mail_from: str = "consortia@localhost"
    # The address pages and e-mails use in links (download links in notices).
    public_url: str = "http://127.0.0.1:8000"
    # Resource sharing: member code -> the bearer token that member's own ILL system issued to
    # this hub, sent when the outbox calls it (JSON, ``{"CN-B": "ctk_..."}``). Kept out of the
    # database so that a copy of it does not hold the keys to the peers; never shown in repr.
    iso18626_tokens: dict[str, str] = Field(default_factory=dict, repr=False)
    # Searches one web process runs at once. A search is CPU work under one interpreter lock:
    # more threads than one only share it, stretching every search by the number running, so
    # under load the long ones wait longest; one at a time, each waits its turn and then runs
    # at full speed. Run a process per core (see README) rather than more threads.
    search_threads: int = Field(default=1, ge=1, le=64)
    # Answer searches from the index's in-memory segment when one is built and current
    # (consortia.search.segment; SQLite): the same results as the SQL, several times faster.
    search_segments: bool = True

    @field_validator("iso18626_tokens")
    @classmethod
    def _token_codes(cls, value: dict[str, str]) -> dict[str, str]:
        # Member codes are matched without regard to case; an empty token means none.
        return {code.strip().upper(): token for code, token in value.items() if token}

    def signing_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.secret_file
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
