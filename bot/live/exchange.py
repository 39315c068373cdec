"""Build a ccxt exchange from an ExchangeConfig: urls/options overrides, sandbox, rate limit, keys from the environment."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.config.exchange import ExchangeConfig
from bot.config.loader import deep_merge
from bot.live.errors import ExchangeSetupError

_CREDENTIALS = (("api_key_env", "apiKey"), ("secret_env", "secret"), ("password_env", "password"))


class Redactor:
    """Replaces secret values with `***` in any text about to be logged, published or raised.

    ccxt never puts keys in its messages as far as we know; this is the second line of defence.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


class _RedactingFilter(logging.Filter):
    """Rewrites a log record's text through a Redactor before any handler sees it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self._redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def _own_logger(exchange_id: str, redact: Redactor) -> logging.Logger:
    """A logger for one exchange instance that redacts its secrets.

    ccxt logs every request's headers at DEBUG, and Binance's carry the API key. The logger is
    built outside logging's registry, so it belongs to this instance only (filters do not pile
    up across builds), and its records still reach the handlers of the `ccxt` logger tree.
    """
    logger = logging.Logger(f"ccxt.{exchange_id}")  # noqa: LOG001  outside the registry on purpose (above)
    logger.parent = logging.getLogger("ccxt")
    logger.addFilter(_RedactingFilter(redact))
    return logger


def read_credentials(config: ExchangeConfig, env: Mapping[str, str]) -> dict[str, str]:
    """ccxt credential fields read from the environment variables the config names; raises naming the variable."""
    credentials: dict[str, str] = {}
    for field, ccxt_name in _CREDENTIALS:
        variable = getattr(config, field)
        if variable is None:
            continue
        value = env.get(variable)
        if not value:
            # The variable's name only: its value is never part of a message.
            raise ExchangeSetupError(f"exchange.{field}: environment variable {variable} is not set or empty")
        credentials[ccxt_name] = value
    return credentials


def exchange_class(exchange_id: str, streaming: bool) -> Any:
    """The ccxt class for an id: ccxt.pro when streaming and it exists there, else ccxt.async_support."""
    import ccxt.async_support
    import ccxt.pro

    if streaming and exchange_id in ccxt.pro.exchanges:
        return getattr(ccxt.pro, exchange_id)
    if exchange_id in ccxt.async_support.exchanges:
        return getattr(ccxt.async_support, exchange_id)
    raise ExchangeSetupError(f"exchange.id: ccxt has no exchange {exchange_id!r}")


def build_exchange(config: ExchangeConfig, env: Mapping[str, str], streaming: bool = True) -> tuple[Any, Redactor]:
    """A configured, not yet connected ccxt exchange and the redactor for its secrets. Close it with `await exchange.close()`."""
    cls = exchange_class(config.id, streaming)
    credentials = read_credentials(config, env)
    redact = Redactor(list(credentials.values()))
    exchange = cls(
        {
            "enableRateLimit": config.enable_rate_limit,
            "timeout": config.timeout_ms,
            # verbose would print request headers, which carry the API key.
            "verbose": False,
            # In the constructor: ccxt sizes its token bucket from rateLimit as it is built.
            **({"rateLimit": config.rate_limit_ms} if config.rate_limit_ms is not None else {}),
            **credentials,
        }
    )
    exchange.logger = _own_logger(config.id, redact)
    try:
        if config.sandbox:
            if not exchange.urls.get("test"):
                raise ExchangeSetupError(f"exchange.sandbox: {config.id} has no sandbox (testnet) in ccxt")
            exchange.set_sandbox_mode(True)
        # After sandbox mode, so explicit overrides win over the testnet urls.
        if config.urls:
            exchange.urls = deep_merge(exchange.urls, config.urls)
        if config.options:
            exchange.options = deep_merge(dict(exchange.options), config.options)
    except ExchangeSetupError:
        _discard(exchange)
        raise
    except Exception as exc:  # noqa: BLE001  whatever ccxt raises while setting up becomes ExchangeSetupError
        # Nothing connected yet, but the async exchange still holds resources to release.
        _discard(exchange)
        raise ExchangeSetupError(redact(f"exchange: {config.id}: {exc}")) from None
    return exchange, redact


def _discard(exchange: Any) -> None:
    # A never-opened async ccxt exchange has no session; dropping it is enough.
    exchange.session = None
