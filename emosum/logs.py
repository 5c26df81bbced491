"""One logging setup for every stage: time, stage, message, to stderr."""
from __future__ import annotations

import logging
import os


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("EMOSUM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # transformers / datasets are chatty at INFO; their warnings still show.
    for noisy in ("transformers", "datasets", "urllib3", "filelock", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
