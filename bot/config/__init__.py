"""Configuration: strict pydantic models (models) and the functions that read, merge and validate the files (loader).

Loading a config with its strategy code is bot.strategy.config_load's. This package imports
nothing itself, so its light modules (currency, defaults) do not load pydantic: `bot ctl` reads
only those.
"""
