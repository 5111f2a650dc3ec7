"""factcheck: summarise and fact-check news articles."""

__version__ = "0.1.0"
