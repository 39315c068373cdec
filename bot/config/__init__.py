"""Configuration: strict pydantic models and the functions that read, merge and validate the files.

Loading a config with its strategy code is bot.strategy.config_load's.
"""
from bot.config.models import BotConfig, StrategyConfig

__all__ = ["BotConfig", "StrategyConfig"]
