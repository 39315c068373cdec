"""Trading: actions, positions, portfolio, paper exchange and risk."""
