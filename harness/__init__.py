"""harness: an open benchmark and reproduction harness for fast LLM fine-tuning by knowledge transfer."""

__version__ = "0.1.0"
