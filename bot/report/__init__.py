"""`bot report`: a replay's output folder turned into one self-contained HTML page."""
