"""Configuration: strict pydantic models and the loader that merges and validates the files."""
from bot.config.loader import LoadedConfig, load_config
from bot.config.models import BotConfig, StrategyConfig

__all__ = ["BotConfig", "LoadedConfig", "StrategyConfig", "load_config"]
